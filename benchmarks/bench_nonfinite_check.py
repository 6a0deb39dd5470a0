"""The zoo's non-finite gradient check (``swift_zoo.optim.all_finite``) beside what it costs inside a step.

Every zoo optimizer checks all gradients for NaN/Inf before it writes anything (the ``nonfinite_grads``
policy), so the check is one more read of every gradient in each step, a cost ``torch.optim.AdamW`` does not
pay. Gradients: those of the step-time model of ``bench_optimizers.py`` (an embedding, ten 2048x2048 matrices,
RMSNorm weights, a 2048x2048 head: 50 M float32 values). Compared, interleaved in one process, medians:

* ``all_finite`` -- the zoo's check: one ``sum`` per tensor (a read at memory speed);
* ``foreach_norm check`` -- the check as it was before: ``torch._foreach_norm`` over the tensors, then the same
  finiteness test of the results;
* ``AdamW fused step`` -- ``torch.optim.AdamW(fused=True).step()`` on the same parameters, for scale: the
  check's share of a step is the ratio.

Run:  ``python benchmarks/bench_nonfinite_check.py``   Smoke run:  ``python benchmarks/bench_nonfinite_check.py --quick``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import interleaved_medians, markdown_table, report_header, write_section

RESULTS = Path(__file__).resolve().parent / "results" / "optimizers_elementwise.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, results to a temp dir")
    args = parser.parse_args()
    import torch

    from swift_zoo.optim import all_finite

    width, blocks, rounds = (64, 2, 3) if args.quick else (2048, 10, 30)
    gen = torch.Generator().manual_seed(0)
    shapes = [(width, width)] * (blocks + 2) + [(width,)] * (blocks + 1)
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    grads = [p.grad for p in params]
    adamw = torch.optim.AdamW(params, lr=1e-4, fused=True)

    def foreach_norm_check() -> bool:
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())

    cases = {"all_finite": lambda: all_finite(grads), "foreach_norm check": foreach_norm_check,
             "AdamW fused step": adamw.step}
    assert all_finite(grads) and foreach_norm_check()
    grads[3][5, 7] = float("nan")
    assert not all_finite(grads) and not foreach_norm_check()
    grads[3][5, 7] = 0.0
    medians = interleaved_medians(cases, rounds)
    step = medians["AdamW fused step"]
    rows = []
    for name, seconds in medians.items():
        rows.append([f"`{name}`", f"{seconds * 1e3:.2f}", f"{seconds / step:.2f}x"])
    numel = sum(p.numel() for p in params)
    text = (report_header("The non-finite gradient check") +
            f"\n{numel / 1e6:.1f} M float32 gradient values in {len(params)} tensors, {rounds} interleaved rounds, "
            "medians.\n\n" + markdown_table(["what", "ms", "vs the fused AdamW step"], rows) + "\n")
    out = Path(tempfile.gettempdir()) / "bench_nonfinite_check.md" if args.quick else RESULTS
    write_section(out, "bench_nonfinite_check", text)
    print(text)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
