"""The native-kernel cache follows the rules of a code cache (DESIGN §9, issue 13 item 4): 0700
directories whatever the umask, only verified files of this user are loaded, a planted library never
runs, a truncated or corrupt one is rebuilt instead of killing the process.

The end-to-end cases run ``swift_optim_zoo._native`` in a subprocess (a bad library must not take the
test process down, and the library is loaded once per process); the verification rules themselves are
tested in-process on plain bytes."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from swift_optim_zoo import _native

PROBE = textwrap.dedent("""
    import os, sys, warnings
    warnings.simplefilter("always")
    if os.environ.get("PROBE_UMASK"):
        os.umask(int(os.environ["PROBE_UMASK"], 8))
    import torch
    from swift_optim_zoo import _native
    grad = torch.arange(12.0).reshape(3, 4)
    rows, cols, _ = _native.square_sums(grad)
    assert torch.equal(rows, (grad * grad).sum(1)) and torch.equal(cols, (grad * grad).sum(0))
    print("native" if _native.library() is not None else "fallback")
""")

PLANTED_C = textwrap.dedent("""
    #include <stdio.h>
    #include <stdlib.h>
    __attribute__((constructor)) static void planted(void) {
        FILE *marker = fopen(getenv("PLANTED_MARKER"), "w");
        if (marker) { fputs("planted code ran", marker); fclose(marker); }
    }
""")


def probe(cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SWIFT_ZOO_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def compiler() -> str:
    found = _native.find_compiler()
    if found is None:
        pytest.skip("no C compiler here: the kernels cannot be built (the verification rules are tested below)")
    return found


@pytest.fixture(scope="module")
def built_cache(compiler: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with the kernels built once; tests copy it."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    done = probe(cache)
    assert done.returncode == 0 and done.stdout.split() == ["native"], done.stderr
    return cache


@pytest.fixture
def cache(built_cache: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(built_cache, copy)
    return copy


def library_of(cache: Path) -> Path:
    (found,) = cache.glob("native-kernels-*.so")
    return found


def test_a_library_planted_at_the_predictable_name_never_runs(cache: Path, compiler: str, tmp_path: Path) -> None:
    target = library_of(cache)
    source = tmp_path / "planted.c"
    source.write_text(PLANTED_C)
    subprocess.run([compiler, "-shared", "-fPIC", str(source), "-o", str(tmp_path / "planted.so")], check=True)
    target.unlink()
    shutil.copy(tmp_path / "planted.so", target)  # where the next process will look, with no valid tag
    marker = tmp_path / "marker"
    done = probe(cache, PLANTED_MARKER=str(marker))
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), "the planted library was loaded and its code ran"
    assert done.stdout.split() == ["native"]  # rebuilt, and the real kernels run
    assert "failed verification and is rebuilt" in done.stderr
    assert "does not match the tag recorded when it was built" in done.stderr
    assert library_of(cache).read_bytes() != (tmp_path / "planted.so").read_bytes()


def test_a_truncated_library_is_rebuilt_instead_of_killing_the_process(cache: Path) -> None:
    target = library_of(cache)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    done = probe(cache)
    assert done.returncode != -signal.SIGBUS, "mapping the truncated library killed the process (SIGBUS)"
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["native"]
    assert "failed verification and is rebuilt" in done.stderr
    assert library_of(cache).read_bytes() != data[: len(data) // 2]
    again = probe(cache)  # the rebuilt entry verifies: no second rebuild
    assert again.returncode == 0 and "failed verification" not in again.stderr, again.stderr


def test_a_corrupt_library_is_rebuilt(cache: Path) -> None:
    target = library_of(cache)
    data = bytearray(target.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xcc" * 64
    target.write_bytes(bytes(data))
    done = probe(cache)
    assert done.returncode == 0 and done.stdout.split() == ["native"], done.stderr
    assert "failed verification and is rebuilt" in done.stderr


def test_under_umask_000_directories_are_0700_and_files_not_writable_by_others(compiler: str,
                                                                                tmp_path: Path) -> None:
    cache = tmp_path / "new" / "nested" / "cache"
    done = probe(cache, PROBE_UMASK="000")
    assert done.returncode == 0 and done.stdout.split() == ["native"], done.stderr
    for folder in (tmp_path / "new", tmp_path / "new" / "nested", cache):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in cache.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, (file, oct(file.stat().st_mode))


def test_a_cache_folder_open_to_others_is_tightened_and_its_loose_files_rebuilt(cache: Path) -> None:
    cache.chmod(0o777)
    target = library_of(cache)
    target.chmod(0o666)
    done = probe(cache)
    assert done.returncode == 0 and done.stdout.split() == ["native"], done.stderr
    assert "lets other users write it" in done.stderr
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(library_of(cache).stat().st_mode) == 0o600


def test_a_cache_folder_that_cannot_be_made_builds_for_the_process_in_a_private_temporary_folder(
        compiler: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"  # a read-only home, as far as mkdir can tell (root writes anywhere else)
    blocker.write_text("not a folder")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = probe(blocker / "cache", TMPDIR=str(scratch))
    assert done.returncode == 0 and done.stdout.split() == ["native"], done.stderr
    assert f"the kernel cache {blocker / 'cache'} cannot be used" in done.stderr
    assert "built for this process in" in done.stderr
    assert list(scratch.iterdir()) == [], "the temporary kernel folder outlived the process"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown the folder")
def test_a_cache_folder_owned_by_another_user_is_refused(cache: Path) -> None:
    os.chown(cache, 65534, 65534)
    done = probe(cache)
    assert done.returncode == 0 and done.stdout.split() == ["fallback"], done.stderr
    assert "is owned by uid 65534, not by this user" in done.stderr


# --------------------------------------------------------- the verification rules, on bytes (no compiler)
def test_verification_needs_the_tag_made_with_this_caches_key(tmp_path: Path) -> None:
    from swift_optim_zoo import _code_cache

    root = _code_cache.private_directory(tmp_path / "c")
    key = _code_cache.cache_key(root)
    assert _code_cache.cache_key(root) == key and len(key) == _code_cache.KEY_BYTES
    assert stat.S_IMODE((root / _code_cache.KEY_FILE).stat().st_mode) == 0o600
    (root / "lib.so").write_bytes(b"\x7fELF library")
    assert _code_cache.verified_library(root, "lib.so", key)[1].startswith("its tag lib.so.hmac is missing")
    (root / "lib.so.hmac").write_bytes(_code_cache._tag(key, b"\x7fELF library"))
    assert _code_cache.verified_library(root, "lib.so", key) == (b"\x7fELF library", "")
    assert _code_cache.verified_library(root, "lib.so", b"k" * 32)[0] is None  # a tag from another key
    (root / "lib.so").write_bytes(b"\x7fELF librar")  # truncated
    data, problem = _code_cache.verified_library(root, "lib.so", key)
    assert data is None and "does not match the tag" in problem


def test_symlinks_and_foreign_key_files_are_not_trusted(tmp_path: Path) -> None:
    from swift_optim_zoo import _code_cache

    root = _code_cache.private_directory(tmp_path / "c")
    key = _code_cache.cache_key(root)
    (tmp_path / "elsewhere.so").write_bytes(b"x")
    (root / "lib.so").symlink_to(tmp_path / "elsewhere.so")
    data, problem = _code_cache.verified_library(root, "lib.so", key)
    assert data is None and "cannot be opened safely" in problem
    (root / _code_cache.KEY_FILE).chmod(0o644)  # readable by others: void, replaced by a new key
    assert _code_cache.cache_key(root) != key
    assert stat.S_IMODE((root / _code_cache.KEY_FILE).stat().st_mode) == 0o600
