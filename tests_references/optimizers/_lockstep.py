"""Run two optimizers in lockstep on the same gradients and report how far their parameters drift apart."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

SHAPES: tuple[tuple[int, ...], ...] = ((24, 16), (16, 24), (16,))


def lockstep(make_ours: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
             make_theirs: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer], *, steps: int = 20,
             shapes: Sequence[tuple[int, ...]] = SHAPES, seed: int = 0, dtype: torch.dtype = torch.float32,
             grad_offset: float = 0.0) -> float:
    """Max |ours - theirs| over every parameter after ``steps`` steps from the same start and gradients.

    ``grad_offset`` adds a constant to every gradient (a consistent descent direction, for methods whose step size
    depends on progress, such as Prodigy's)."""
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    ours = [torch.nn.Parameter(w.clone()) for w in start]
    theirs = [torch.nn.Parameter(w.clone()) for w in start]
    a, b = make_ours(ours), make_theirs(theirs)
    for _ in range(steps):
        for p, q in zip(ours, theirs):
            grad = torch.randn(p.shape, generator=gen, dtype=dtype) + grad_offset
            p.grad, q.grad = grad.clone(), grad.clone()
        a.step()
        b.step()
    return max(float((p.detach() - q.detach()).abs().max()) for p, q in zip(ours, theirs))
