"""What swift-zoo-ms-swift's ``.pth`` costs every interpreter at start-up (budget: 5 ms).

Measured from the repository's sources (``swift-zoo-ms-swift/src``), so it needs no installation.
Each repetition is a **fresh** ``python -S`` interpreter (no site-packages, nothing cached) that

* ``pth``: times ``site.addpackage(<src>, "swift_zoo_ms_swift.pth", set())`` -- exactly what ``site``
  does with the installed file at start-up: import ``swift_zoo_ms_swift._hook`` and run ``install()``
  (one ``sys.meta_path`` entry);
* ``empty``: times the same call on an empty ``.pth`` -- the floor of processing any ``.pth`` file;
* ``python -c pass``: the whole start-up of this interpreter with its normal ``site``, for scale.

Wall and CPU (``time.process_time``) medians over the repetitions, the variants interleaved so a
noisy neighbour hits them alike; the CPU time is the cost (wall time also counts waiting for a core
while other processes run, so it is reported with the load average). The report also checks that after the ``.pth`` ran neither torch, swift (ms-swift)
nor swift_zoo was imported.

Run:  ``python benchmarks/bench_ms_swift_startup.py`` (writes ``benchmarks/results/ms_swift.md``)
Smoke run (asserts the budget loosely, no results file):  ``python benchmarks/bench_ms_swift_startup.py --quick``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "swift-zoo-ms-swift" / "src"
PTH = "swift_zoo_ms_swift.pth"
RESULTS = Path(__file__).resolve().parent / "results" / "ms_swift.md"
BUDGET_S = 0.005
PROBE = (
    "import sys, site, time, json; sys.path.insert(0, {src!r}); t, c = time.perf_counter(), time.process_time(); "
    "site.addpackage({folder!r}, {name!r}, set()); elapsed = [time.perf_counter() - t, time.process_time() - c]; "
    "print(json.dumps([elapsed, [m for m in ('torch', 'swift', 'swift_zoo') if m in sys.modules]]))"
)
SWITCHES = ("SWIFT_ZOO_MS_SWIFT_DISABLE", "SWIFT_ZOO_DISABLE_PLUGIN_AUTOLOAD")


def _pth_time(folder: Path, name: str) -> tuple[list[float], list[str]]:
    code = PROBE.format(src=str(SOURCE), folder=str(folder), name=name)
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, env=env)
    elapsed, imported = json.loads(out.stdout)
    return elapsed, imported


def _start_up_time() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions, no results file")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats
    wall: dict[str, list[float]] = {"pth": [], "empty": [], "python -c pass": []}
    cpu: dict[str, list[float]] = {"pth": [], "empty": []}
    heavy: set[str] = set()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "empty.pth").write_text("")
        for _ in range(repeats):
            for name, where, file in (("pth", SOURCE, PTH), ("empty", Path(folder), "empty.pth")):
                (elapsed, cpu_time), imported = _pth_time(where, file)
                wall[name].append(elapsed)
                cpu[name].append(cpu_time)
                heavy.update(imported)
            wall["python -c pass"].append(_start_up_time())

    def ms(values: list[float] | None, pick) -> str:
        return f"{pick(values) * 1e3:.2f}" if values else "-"

    rows = [[name, ms(values, _measure.median), ms(values, max), ms(cpu.get(name), _measure.median), len(values)]
            for name, values in wall.items()]
    table = _measure.markdown_table(["what", "wall median ms", "wall max ms", "CPU median ms", "runs"], rows)
    cost = _measure.median(cpu["pth"])
    verdict = (f"`.pth` CPU time median {cost * 1e3:.2f} ms (wall {_measure.median(wall['pth']) * 1e3:.2f} ms) "
               f"against a budget of {BUDGET_S * 1e3:.0f} ms; imported at start-up: "
               f"{', '.join(sorted(heavy)) or 'none of torch, swift, swift_zoo'}")
    print(table)
    print(verdict)
    assert not heavy, f"the .pth imported {sorted(heavy)}"
    if args.quick:
        assert cost < 2 * BUDGET_S, cpu["pth"]  # loose: the smoke run shares the CPUs
        return
    load = os.getloadavg()[0]
    text = (_measure.report_header("swift-zoo-ms-swift start-up cost") +
            f"\nLoad average (1 min) when measured: {load:.2f}\n\n{table}\n\n{verdict}\n")
    if not RESULTS.exists():
        RESULTS.write_text("# ms-swift integration benchmarks\n\n")
    _measure.write_section(RESULTS, "ms_swift_startup", text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
