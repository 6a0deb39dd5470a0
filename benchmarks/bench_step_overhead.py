"""What a zoo optimizer step costs per parameter tensor, apart from the arithmetic: many small tensors.

``bench_optimizers.py`` measures a 50 M-parameter model of 23 tensors, where the per-tensor cost of a step
(Python, dispatch, one C call per tensor) is lost in the memory traffic. A model with hundreds of tensors pays
it hundreds of times. Here: 400 float32 tensors of 32 x 32 (so the arithmetic is small), every element-wise zoo
optimizer with ``fused=True`` (its C kernels) beside ``torch.optim.AdamW`` fused (one multi-tensor kernel call
for all tensors) and foreach, interleaved in one process, medians. Each zoo step includes its non-finite
gradient check (one ``sum`` per tensor: its share is the ``all_finite`` row).

Run:  ``python benchmarks/bench_step_overhead.py``   Smoke run:  ``python benchmarks/bench_step_overhead.py --quick``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import interleaved_medians, markdown_table, report_header, write_section

RESULTS = Path(__file__).resolve().parent / "results" / "optimizers_elementwise.md"
ZOO = ["adamw", "sgd", "lion", "adopt", "ademamix", "stable_adamw", "lamb", "adan", "mars", "prodigy", "adamw_8bit",
       "schedule_free_adamw"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few tensors and rounds, results to a temp dir")
    args = parser.parse_args()
    import torch

    import swift_zoo
    from swift_zoo.optim import all_finite

    count, side, rounds = (20, 8, 3) if args.quick else (400, 32, 30)

    def parameters() -> list[torch.nn.Parameter]:
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(side, side, generator=gen)) for _ in range(count)]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        return params

    cases = {}
    for name, fused in (("torch AdamW fused", True), ("torch AdamW foreach", False)):
        opt = torch.optim.AdamW(parameters(), lr=1e-4, fused=fused, foreach=None if fused else True)
        cases[f"`{name}`"] = opt.step
    grads = [p.grad for p in parameters()]
    cases["`all_finite` (the zoo's check alone)"] = lambda: all_finite(grads)
    for name in ZOO:
        kwargs = {} if name == "adamw" else {"fused": True}
        opt = swift_zoo.build_optimizer(name, parameters(), lr=1e-4, **kwargs)
        cases[f"`{name}`" + (" fused=True" if kwargs else " (torch's fused kernel)")] = opt.step
    medians = interleaved_medians(cases, rounds, warmup=2)  # warm-up: state allocation, each kernel's first call
    base = medians["`torch AdamW fused`"]
    rows = []
    for label, seconds in medians.items():
        rows.append([label, f"{seconds * 1e3:.2f}", f"{seconds / count * 1e6:.1f}", f"{seconds / base:.2f}x"])
    text = (report_header("Per-tensor cost of a step: many small tensors") +
            f"\n{count} float32 tensors of {side}x{side}, {rounds} interleaved rounds, medians. The zoo's own "
            "optimizers run `fused=True` (their C kernels, one call per tensor); `adamw` is torch's fused "
            "kernel behind the zoo's frame (roles, the non-finite check).\n\n" +
            markdown_table(["step", "ms", "us per tensor", "vs torch AdamW fused"], rows) + "\n")
    out = Path(tempfile.gettempdir()) / "bench_step_overhead.md" if args.quick else RESULTS
    write_section(out, "bench_step_overhead", text)
    print(text)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
