"""adamw_8bit against torchao's and bitsandbytes' ``AdamW8bit`` (both have CPU paths): the map, and 20 steps."""

from __future__ import annotations

import pytest
import torch
from _lockstep import lockstep

from swift_optim_zoo.adamw_8bit import AdamW8bit, dynamic_map

SHAPES = ((256, 64), (64, 256), (8192,))


def test_dynamic_map_equals_bitsandbytes_bit_for_bit() -> None:
    functional = pytest.importorskip("bitsandbytes.functional", reason="bitsandbytes is not installed")
    for signed in (True, False):
        assert torch.equal(dynamic_map(signed), functional.create_dynamic_map(signed))


@pytest.mark.parametrize("fused", [False, True])
def test_matches_torchao_adamw8bit(fused: bool) -> None:
    """The same rule and quantised states. torchao compiles its step, so float32 evaluation order differs and a
    moment that lands on a rounding boundary occasionally takes the neighbouring code: after 20 steps about 1 in
    10^4 elements differs by more than 1e-5 (measured 5e-5 eager, 1e-4 fused); the mean difference is about 1000x below
    the distance to fp32 AdamW."""
    optim = pytest.importorskip("torchao.optim", reason="torchao is not installed")
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=gen) for s in SHAPES]
    ours, theirs, full = ([torch.nn.Parameter(w.clone()) for w in start] for _ in range(3))
    optimizers = (AdamW8bit(ours, lr=1e-2, weight_decay=0.1, fused=fused),
                  optim.AdamW8bit(theirs, lr=1e-2, weight_decay=0.1), torch.optim.AdamW(full, lr=1e-2, weight_decay=0.1))
    for _ in range(20):
        for p, q, r in zip(ours, theirs, full):
            grad = torch.randn(p.shape, generator=gen)
            p.grad, q.grad, r.grad = grad.clone(), grad.clone(), grad.clone()
        for opt in optimizers:
            opt.step()
    to_torchao = torch.cat([(p - q).detach().abs().flatten() for p, q in zip(ours, theirs)])
    to_fp32 = torch.cat([(p - r).detach().abs().flatten() for p, r in zip(ours, full)])
    assert float((to_torchao > 1e-5).double().mean()) < 1e-3
    assert float(to_torchao.mean()) < 3e-3 * float(to_fp32.mean())


def test_close_to_bitsandbytes_adamw8bit() -> None:
    """bitsandbytes' CPU kernel lands 2.5e-3 away from torchao (and from this class) after 20 steps at lr 1e-2,
    about half of what separates either from fp32 AdamW: it rounds some moments to other codes. The zoo follows
    torchao's rule, whose arithmetic is documented in Python (scaling a block by its reciprocal, as bitsandbytes does,
    where torchao divides); this bounds the distance to bitsandbytes."""
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    to_bnb = lockstep(lambda p: AdamW8bit(p, lr=1e-2), lambda p: bnb.optim.AdamW8bit(p, lr=1e-2), shapes=SHAPES)
    to_fp32 = lockstep(lambda p: AdamW8bit(p, lr=1e-2), lambda p: torch.optim.AdamW(p, lr=1e-2), shapes=SHAPES)
    assert to_bnb < 0.75 * to_fp32, (to_bnb, to_fp32)
