"""The first ``fused=True`` step in a fresh process with empty caches: what a user waits for once.

For each element-wise optimizer with ``fused=True`` (lion, adam_mini, schedule_free_adamw, adafactor)
on the 50 M-parameter model of ``bench_optimizers.py``, every run in a new process whose
``TORCHINDUCTOR_CACHE_DIR`` and ``SWIFT_ZOO_CACHE_DIR`` point at new empty folders:

* ``native`` -- what ``fused=True`` does on float32 CPU tensors: the C kernels of
  ``swift_optim_zoo/_native_rules.py``, built on the first step (one C file, about a second);
* ``compiled`` -- the same rules through ``torch.compile`` (inductor), which ``fused=True`` used for
  every tensor before and still uses for bf16 parameters and CUDA (the C kernels switched off);
* ``warm`` rows -- a second process on the caches the cold one left (a user's later runs).

Reported: the first step (building or compiling included), the second step, and fused AdamW's step
on the same parameters for scale. Single runs per configuration: the figure is a one-off cost, and the
machine's load is printed beside it (``uptime``).

Run:  ``python benchmarks/bench_first_step.py`` (``--only lion``, ``--no-compiled`` to skip the slow rows)
Smoke run:  ``python benchmarks/bench_first_step.py --quick``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure

RESULTS = Path(__file__).resolve().parent / "results" / "first_step.md"
OPTIMIZERS = {  # name -> kwargs (defaults otherwise)
    "lion": {"fused": True},
    "adam_mini": {"fused": True},
    "schedule_free_adamw": {"fused": True},
    "adafactor": {"fused": True},
}
FULL = {"vocab": 2048, "hidden": 2048, "blocks": 10}
QUICK = {"vocab": 64, "hidden": 64, "blocks": 2}


def first_step_case(config: dict[str, Any]) -> dict[str, Any]:
    import torch
    from bench_optimizers import build_bench_model

    import swift_zoo

    if config["mode"] == "compiled":  # switch the C kernels off: every kernel compiles, as before them
        from swift_optim_zoo.adafactor._fused_rule import UNFACTORED_KERNEL
        from swift_optim_zoo.adam_mini.adam_mini import ADAM_MINI_KERNEL
        from swift_optim_zoo.lion.lion import LION_KERNEL
        from swift_optim_zoo.schedule_free.adamw import SCHEDULE_FREE_KERNEL

        for kernel in (UNFACTORED_KERNEL, ADAM_MINI_KERNEL, LION_KERNEL, SCHEDULE_FREE_KERNEL):
            kernel.native = None
    shape = config["shape"]
    torch.manual_seed(0)
    model = build_bench_model(shape["vocab"], shape["hidden"], shape["blocks"])
    gen = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    start = time.perf_counter()
    opt = swift_zoo.build_optimizer(config["optimizer"], model, **config["kwargs"])
    built = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(2):
        start, start_cpu = time.perf_counter(), _cpu_seconds()
        opt.step()
        times.append(time.perf_counter() - start)
        cpu.append(_cpu_seconds() - start_cpu)
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    adamw.step()
    start = time.perf_counter()
    adamw.step()
    adamw_s = time.perf_counter() - start
    return {"construct_s": built, "first_s": times[0], "second_s": times[1], "adamw_s": adamw_s,
            "first_cpu_s": cpu[0], "second_cpu_s": cpu[1]}


def _cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its finished children (the C compiler): work done,
    which a loaded machine stretches much less than wall time."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run(config: dict[str, Any], caches: Path) -> dict[str, Any]:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(caches / "inductor")
    os.environ["SWIFT_ZOO_CACHE_DIR"] = str(caches / "swift_zoo")
    return _measure.run_worker(__file__, config, timeout=1800)


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, native only, no results file")
    parser.add_argument("--only", nargs="*", choices=sorted(OPTIMIZERS), help="optimizers to run (default: all)")
    parser.add_argument("--no-compiled", action="store_true", help="skip the torch.compile rows (minutes)")
    parser.add_argument("--output", type=Path, default=None, help=f"markdown file (default {RESULTS})")
    args = parser.parse_args()
    shape = QUICK if args.quick else FULL
    modes = ("native",) if args.quick or args.no_compiled else ("native", "compiled")
    rows = []
    for name in args.only or sorted(OPTIMIZERS):
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="bench_first_step_") as tmp:
                caches = Path(tmp)
                for temperature in ("cold", "warm"):
                    load = _load().split("load average:")[-1].strip()
                    config = {"case": "first_step", "optimizer": name, "kwargs": OPTIMIZERS[name], "mode": mode,
                              "shape": shape}
                    result = _run(config, caches)
                    rows.append([f"`{name}`", mode, temperature, f"{result['first_s']:.2f}",
                                 f"{result['first_cpu_s']:.2f}", f"{result['second_s']:.3f}",
                                 f"{result['second_cpu_s']:.3f}", f"{result['adamw_s']:.3f}", load])
                    print(f"{name} {mode} {temperature}: first {result['first_s']:.2f} s, second "
                          f"{result['second_s']:.3f} s (fused AdamW {result['adamw_s']:.3f} s), load {load}",
                          flush=True)
    table = _measure.markdown_table(
        ["optimizer", "fused kernels", "caches", "first step (s)", "first step CPU (s)", "second step (s)",
         "second step CPU (s)", "fused AdamW step (s)", "load average (1, 5, 15 min) before"], rows)
    text = _measure.report_header("First fused=True step in a fresh process") + (
        f"\nModel: {shape['blocks']} Linear {shape['hidden']}x{shape['hidden']} blocks, embedding and head "
        f"(vocab {shape['vocab']}), float32, random gradients. Each row is one new process; 'cold' starts with "
        "empty `TORCHINDUCTOR_CACHE_DIR` and `SWIFT_ZOO_CACHE_DIR`, 'warm' is the next process on what the cold "
        "one left there. 'native' = what `fused=True` runs for float32 CPU tensors (C kernels, "
        "`swift_optim_zoo/_native_rules.py`); 'compiled' = the same rules through torch.compile (used for bf16 "
        "parameters and CUDA). Single runs: one-off costs, with the machine's load beside them. 'CPU' = CPU "
        "seconds of the process and of its finished children (the C compiler): the work, which a shared machine "
        "stretches less than the wall time.\n\n" + table + "\n")
    print(text)
    if not args.quick:
        output = args.output or RESULTS
        if not output.exists():
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text("# First-step benchmarks\n\n")
        _measure.write_section(output, "bench_first_step", text)
        print(f"written to {output}", file=sys.stderr)


if __name__ == "__main__":
    if not _measure.worker_main({"first_step": first_step_case}):
        main()
