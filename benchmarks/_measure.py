"""Measurement helpers shared by the benchmark scripts.

How a number is taken (see ``/work/shared/reference/perf.md``):

* every configuration runs in a **fresh subprocess** (:func:`run_worker`), started with
  ``MALLOC_MMAP_THRESHOLD_=1048576`` so that freed tensors go back to the OS and the resident set
  follows live memory;
* inside it, after a small warm-up and after the inputs exist, the resident set (``VmRSS``) is the
  **baseline**; before each repetition the peak (``VmHWM``) is reset by writing ``5`` to
  ``/proc/self/clear_refs``; the figure reported is ``VmHWM - baseline`` (:func:`measure`);
* times and peaks are **medians** over repetitions, and the scripts interleave the methods they
  compare (round 1: A, B; round 2: A, B; ...) so that a noisy neighbour hits both alike.

A benchmark script calls :func:`worker_main` when run with ``--worker JSON``; the parent process
never imports torch before its workers have run.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MMAP_THRESHOLD = "1048576"
RESULT_PREFIX = "@@RESULT@@ "
MIB = 2**20


# ------------------------------------------------------------------ inside a worker
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    message = f"/proc/self/status has no {field} line"
    raise RuntimeError(message)


def rss_bytes() -> int:
    """Resident set size now."""
    return _status_kib("VmRSS") * 1024


def peak_bytes() -> int:
    """Highest resident set size since the process started or since :func:`reset_peak`."""
    return _status_kib("VmHWM") * 1024


def reset_peak() -> None:
    """Reset ``VmHWM`` to the current resident set (Linux ``clear_refs`` value 5)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def measure(run: Callable[[], Any], *, repeats: int = 1, cleanup: Callable[[], None] | None = None) -> dict[str, Any]:
    """Time ``run()`` ``repeats`` times; peak memory above the resident set measured just before.

    ``cleanup()`` runs after each repetition (drop ``.grad`` and outputs) so every repetition starts
    from the same live memory. Returns per-repetition lists and their medians.
    """
    if cleanup is not None:
        cleanup()
    gc.collect()
    baseline = rss_bytes()
    times, peaks = [], []
    for _ in range(repeats):
        gc.collect()
        reset_peak()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        peaks.append(peak_bytes() - baseline)
        if cleanup is not None:
            cleanup()
    return {
        "baseline_bytes": baseline,
        "times_s": times,
        "peaks_bytes": peaks,
        "time_s": statistics.median(times),
        "peak_bytes": statistics.median(peaks),
    }


def emit(result: dict[str, Any]) -> None:
    """Hand a worker's result to the parent (one tagged JSON line on stdout)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def worker_main(cases: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> bool:
    """If ``--worker JSON`` is on the command line, run ``cases[config["case"]](config)``, emit, return True."""
    if "--worker" not in sys.argv:
        return False
    config = json.loads(sys.argv[sys.argv.index("--worker") + 1])
    emit(cases[config["case"]](config))
    return True


# ------------------------------------------------------------------ in the parent
def run_worker(script: str | Path, config: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Run ``python script --worker JSON`` in a fresh process with the allocator settings; its result."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
    command = [sys.executable, str(script), "--worker", json.dumps(config)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    message = (
        f"worker {config} exited with {done.returncode} and no result; expected a line starting with "
        f"{RESULT_PREFIX.strip()!r}. stderr tail:\n{done.stderr[-3000:]}"
    )
    raise RuntimeError(message)


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved_medians(cases: dict[str, Callable[[], Any]], rounds: int, *, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each case, timed in ``rounds`` rounds that run every case once in turn (so a change in the
    machine's load falls on all of them alike), after ``warmup`` untimed calls of each."""
    for case in cases.values():
        for _ in range(warmup):
            case()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def machine_info() -> dict[str, str]:
    """CPU model, core count, memory, Python and torch versions (torch read from a subprocess)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                           if line.startswith("MemTotal")))
        memory = f"{mem_kib / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown"
    probe = "import torch; print(torch.__version__, torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False).stdout.split()
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "torch": out[0] if out else "unknown",
        "torch_threads": out[1] if len(out) > 1 else "unknown",
        "platform": platform.platform(),
    }


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report_header(title: str) -> str:
    """Section heading with the exact command, the date and the machine."""
    info = machine_info()
    command = " ".join(shlex.quote(arg) for arg in [Path(sys.executable).name, *sys.argv])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"{info['cpu']}, {info['cores']} cores (torch threads {info['torch_threads']}), {info['memory']} RAM, "
               f"Python {info['python']}, torch {info['torch']}, {info['platform']}")
    return (f"## {title}\n\nCommand: `{command}` (from the repository root)\n\n"
            f"Date: {when}\n\nMachine: {machine}\n")


def write_section(path: str | Path, key: str, text: str) -> None:
    """Replace (or append) the section of ``path`` between ``<!-- key:start -->`` and ``<!-- key:end -->``."""
    path = Path(path)
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else "# LM loss benchmarks\n\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def fmt_mib(nbytes: float) -> str:
    return f"{nbytes / MIB:,.0f}"
