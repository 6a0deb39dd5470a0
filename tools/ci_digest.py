"""After a failed ``bash .ci/run``: what each failed nox session printed about its failure, and the machine.

CI keeps only the end of the output, where a session that failed early (``tests(optim-zoo)`` runs third of
fifteen) never appears. This repeats, after the last session, each failed session's failure lines (pytest's
``FAILED``/``ERROR`` lines, a crashed process's ``Fatal Python error`` block, the command nox reported) and the
end of its output, plus the facts of the machine that differ between machines (CPU, cores, cache folders).

``python tools/ci_digest.py LOG`` (standard library only: it runs in the CI's nox venv).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import tempfile
from pathlib import Path

START = re.compile(r"^nox > Running session (?P<name>\S+)")
FAILED_END = re.compile(r"^nox > Session (?P<name>\S+) (failed|raised exception|aborted)")
KEY_LINE = re.compile(r"^(FAILED|ERROR) |Fatal Python error|Segmentation fault|Aborted|Killed|^E +\w*(Error|Exception)"
                      r"|^nox > Command .* failed|terminated with (exit code|signal)|^=+ .*(failed|error).* =+$")
TAIL_LINES = 40
KEY_LINES = 40


def sections(lines: list[str]) -> dict[str, list[str]]:
    """Each session's lines, by name, from its ``Running session`` line to the next one."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        match = START.match(line)
        if match:
            current = found.setdefault(match["name"], [])
        if current is not None:
            current.append(line)
    return found


def failed_sessions(lines: list[str]) -> list[str]:
    return [match["name"] for line in lines if (match := FAILED_END.match(line))]


def writable(folder: str) -> str:
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        with tempfile.NamedTemporaryFile(dir=path):
            return f"{folder} (writable at {path})"
    except OSError as exc:
        return f"{folder} (NOT writable at {path}: {exc.strerror})"


def machine() -> list[str]:
    flags = ""
    model = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                     "")
        flag_line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
        flags = " ".join(sorted({f for f in flag_line.split() if f.startswith(("avx", "fma", "sse4"))}))
    except OSError:
        pass
    limits = []
    for name in ("cpu.max", "memory.max"):
        try:
            limits.append(f"cgroup {name} {Path('/sys/fs/cgroup', name).read_text().strip()}")
        except OSError:
            pass
    try:
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        limits.append(" ".join(total.split()))
    except (OSError, StopIteration):
        pass
    free = shutil.disk_usage(tempfile.gettempdir()).free / 2**30
    home = os.path.expanduser("~")
    cache = os.environ.get("SWIFT_ZOO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "swift_zoo")
    return [
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"uid {os.geteuid()}, umask {oct(os.umask(os.umask(0o22)))}",
        f"cpu: {model or '?'}; {flags or 'no avx/fma flags read'}",
        f"{'; '.join(limits) or 'no cgroup or memory limits read'}; {free:.1f} GiB free in tmp",
        f"home {writable(home)}; kernel cache {writable(cache)}; tmp {writable(tempfile.gettempdir())}",
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} TORCHINDUCTOR_CACHE_DIR="
        f"{os.environ.get('TORCHINDUCTOR_CACHE_DIR')} SWIFT_ZOO_CACHE_DIR={os.environ.get('SWIFT_ZOO_CACHE_DIR')}",
    ]


def digest(lines: list[str]) -> list[str]:
    out = ["", "=" * 30 + " CI digest: the failed sessions, repeated " + "=" * 30, *machine()]
    by_name = sections(lines)
    for name in failed_sessions(lines) or ["(none reported failed: the end of the log)"]:
        body = by_name.get(name, lines)
        keys = [line for line in body if KEY_LINE.search(line)]
        out += ["", f"--- {name}: {len(body)} lines; its failure lines ({len(keys)}):", *keys[:KEY_LINES],
                f"--- {name}: its last {TAIL_LINES} lines:", *body[-TAIL_LINES:]]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tools/ci_digest.py NOX_LOG", file=sys.stderr)
        return 2
    lines = Path(argv[1]).read_text(errors="replace").splitlines()
    print("\n".join(line[:400] for line in digest(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
