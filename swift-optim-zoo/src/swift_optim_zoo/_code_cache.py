"""A cache of compiled shared libraries that follows the rules of a code cache (DESIGN §9).

A cached library is code that this process will run, so a file found in the cache is loaded only when
it is provably one this user built. :func:`load_library` does it this way:

* **Directories** are created with mode 0700 (each missing component, whatever the umask). The cache
  directory must be owned by this user; if it is ours but group- or world-writable (made by an older
  version under ``umask 000``) it is tightened to 0700 first, and anything already in it must still
  pass the checks below. A directory owned by someone else is refused (callers fall back to torch).
* **What is trusted**: this user (and root), and a per-cache secret key: 32 random bytes in
  ``cache.key``, created 0600 and read only when it is a regular file owned by this user that no one
  else can read or write. Building a library records ``HMAC-SHA256(key, library bytes)`` next to it
  (``<name>.hmac``). Someone who can plant a file in the directory -- the predictable name is derived
  from public inputs -- cannot read the key, so cannot write a tag that matches their library: the tag
  is kept where it cannot be fixed without the secret, even though it sits beside the library. Anyone
  who can read the key is this user or root, who could change the installed package itself.
* **Verification before loading**: the library and its tag are opened without following symlinks and
  checked through the open descriptor (a regular file, owned by this user, not group/world-writable);
  the library is read whole and its HMAC compared in constant time. What was verified is the bytes in
  memory: they are written to a fresh private file (``mkstemp`` in the 0700 directory) and that file is
  what ``dlopen`` maps, so no one can swap or truncate the file between the check and the load, and a
  truncated or corrupt cache entry is never mapped (mapping a truncated ``.so`` kills the process with
  SIGBUS).
* **Rebuild**: a missing library, one that fails any check, or one whose tag does not match is rebuilt
  (and the replacement written atomically: temp file + ``os.replace``); a process that builds loads the
  bytes it built. Concurrent builders (several ranks) each write whole files; a tag and library from two
  different builds can only make a later process rebuild once, never load unverified code.

Imports no torch.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

KEY_FILE = "cache.key"
TAG_SUFFIX = ".hmac"
KEY_BYTES = 32
#: The largest library read for verification; a larger file is not ours.
MAX_LIBRARY_BYTES = 64 * 2**20


class UntrustedCacheError(RuntimeError):
    """The cache directory cannot be trusted (owned by someone else, not a directory)."""


def _owner_only(info: os.stat_result, *, readable_by_others: bool) -> str | None:
    """Why a file with ``info`` cannot be trusted, or ``None``."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    forbidden = 0o022 if readable_by_others else 0o077
    if info.st_mode & forbidden:
        return f"mode {stat.S_IMODE(info.st_mode):o} lets other users {'write' if readable_by_others else 'access'} it"
    return None


def private_directory(path: Path) -> Path:
    """``path``, created (with every missing parent) as mode 0700, and checked to be this user's alone."""
    path = Path(os.path.abspath(path))
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)  # the umask can only remove bits; make it exactly 0700
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        message = f"the code cache {path} is not a directory"
        raise UntrustedCacheError(message)
    if info.st_uid != os.geteuid():
        message = f"the code cache {path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
        raise UntrustedCacheError(message)
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def _read_checked(path: Path, *, limit: int, readable_by_others: bool) -> tuple[bytes | None, str]:
    """The bytes of ``path`` if it passes the ownership checks (made on the open descriptor), else why not."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:  # a symlink (ELOOP), a permission problem
        return None, f"cannot be opened safely ({exc.strerror or exc})"
    try:
        info = os.fstat(fd)
        problem = _owner_only(info, readable_by_others=readable_by_others)
        if problem is None and info.st_size > limit:
            problem = f"{info.st_size} bytes, more than the {limit} a cache entry may hold"
        if problem is not None:
            return None, problem
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), ""
    finally:
        os.close(fd)


def _write_private(folder: Path, name: str, data: bytes) -> None:
    """``folder/name`` replaced atomically by a 0600 file holding ``data``."""
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, folder / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cache_key(folder: Path) -> bytes:
    """The cache's secret key (created on first use); a key file that fails the checks is replaced."""
    path = folder / KEY_FILE
    for _ in range(3):
        data, _problem = _read_checked(path, limit=KEY_BYTES, readable_by_others=False)
        if data is not None and len(data) == KEY_BYTES:
            return data
        path.unlink(missing_ok=True)  # someone else's, too open, or the wrong size: every tag made with it is void
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            continue  # a concurrent process created it: read theirs
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
    message = f"the code cache key {path} could not be created or read safely"
    raise UntrustedCacheError(message)


def _tag(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).hexdigest().encode()


def verified_library(folder: Path, name: str, key: bytes) -> tuple[bytes | None, str]:
    """The bytes of ``folder/name`` if the file passes every check and matches its tag, else why not."""
    data, problem = _read_checked(folder / name, limit=MAX_LIBRARY_BYTES, readable_by_others=True)
    if data is None:
        return None, problem
    tag, problem = _read_checked(folder / (name + TAG_SUFFIX), limit=256, readable_by_others=True)
    if tag is None:
        hint = " (an entry of an older swift-optim-zoo, or not built by one)" if problem == "missing" else ""
        return None, f"its tag {name + TAG_SUFFIX} is {problem}{hint}"
    if not hmac.compare_digest(tag.strip(), _tag(key, data)):
        return None, "its content does not match the tag recorded when it was built (corrupt, truncated or replaced)"
    return data, ""


def load_library(folder: Path, name: str, build: Callable[[Path], None], *,
                 on_rejected: Callable[[str], None] | None = None) -> ctypes.CDLL:
    """The library ``name`` of the cache ``folder``, verified, or built by ``build(output_path)`` and stored.

    :param build: writes a shared library to the path it is given (inside a private temporary folder);
        raises when it cannot.
    :param on_rejected: called with the reason when a cached file existed but failed verification
        (it is then rebuilt).
    """
    root = private_directory(folder)
    key = cache_key(root)
    data, problem = verified_library(root, name, key)
    if data is None:
        if problem != "missing" and on_rejected is not None:
            on_rejected(f"{root / name}: {problem}")
        with tempfile.TemporaryDirectory(dir=root) as work:
            output = Path(work) / name
            build(output)
            data = output.read_bytes()
        _write_private(root, name + TAG_SUFFIX, _tag(key, data))
        _write_private(root, name, data)
    return _dlopen_bytes(root, name, data)


def _dlopen_bytes(folder: Path, name: str, data: bytes) -> ctypes.CDLL:
    """Load verified bytes through a fresh private file (the file the loader maps is the one just written)."""
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".load-{Path(name).stem}-", suffix=Path(name).suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return ctypes.CDLL(temporary)
    finally:
        Path(temporary).unlink(missing_ok=True)  # the mapping outlives the name
