"""normuon, adamuon, kron and scion against pytorch_optimizer 4.1, 20 steps in lockstep on matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytorch_optimizer = pytest.importorskip(
    "pytorch_optimizer", reason="pytorch_optimizer is not installed (tests_references/requirements.txt)")

from _lockstep import lockstep  # noqa: E402

from swift_optim_zoo.kron import Kron  # noqa: E402
from swift_optim_zoo.muon import AdaMuon, NorMuon  # noqa: E402
from swift_optim_zoo.scion import Scion  # noqa: E402

PO = pytorch_optimizer
WIDE = ((16, 24), (24, 24))  # Muon's original lr scale is 1 on wide and square matrices, as pytorch_optimizer's


def test_normuon_matches_pytorch_optimizer() -> None:
    """Both orthogonalise in bfloat16; the remaining difference is the order of bf16 roundings."""
    drift = lockstep(lambda p: NorMuon(p, lr=0.02, weight_decay=0.1),
                     lambda p: PO.NorMuon([{"params": p, "use_muon": True}], lr=0.02, weight_decay=0.1,
                                          foreach=False), shapes=WIDE)
    assert drift < 1e-3


def test_adamuon_matches_pytorch_optimizer() -> None:
    drift = lockstep(lambda p: AdaMuon(p, lr=0.02, weight_decay=0.1),
                     lambda p: PO.AdaMuon([{"params": p, "use_muon": True}], lr=0.02, weight_decay=0.1,
                                          betas=(0.9, 0.95), foreach=False), shapes=((16, 24), (24, 16)))
    assert drift < 1e-3


def test_kron_matches_pytorch_optimizer_with_the_global_generator() -> None:
    """seed=None draws the probes from torch's global generator in the same order as pytorch_optimizer; its
    random rebalancing (numpy, p = 0.01) is switched off: rebalancing leaves the preconditioner unchanged."""
    def ours(params):
        torch.manual_seed(123)
        return Kron(params, lr=1e-2, weight_decay=0.1, seed=None)

    def theirs(params):
        torch.manual_seed(123)
        np.random.seed(0)
        return PO.Kron(params, lr=1e-2, weight_decay=0.1, balance_prob=0.0)

    gen_state = torch.random.get_rng_state()
    a = _run_alone(ours)
    torch.random.set_rng_state(gen_state)
    b = _run_alone(theirs)
    assert max(float((x - y).abs().max()) for x, y in zip(a, b)) < 1e-5


def _run_alone(make):
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in ((24, 16), (16, 24), (16,))]
    opt = make(params)
    for _ in range(20):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach() for p in params]


def test_scion_matches_pytorch_optimizer_per_norm() -> None:
    """One group per oracle: spectral (hidden), col (embedding, transposed), sign (head), bias RMS (vectors)."""
    lmo = PO.optimizer.scion.LMONorm
    cases = [("hidden_matrix", (16, 24), lmo.SPECTRAL, {}), ("embedding", (24, 16), lmo.COL, {"transpose": True}),
             ("output_head", (24, 16), lmo.SIGN, {}), ("norm", (16,), lmo.BIAS, {})]
    for role, shape, norm, kwargs in cases:
        drift = lockstep(
            lambda p, r=role: Scion([{"params": p, "role": r}], lr=1e-2, scale=2.0, head_scale=2.0),
            lambda p, n=norm, k=kwargs: PO.SCION(p, lr=1e-2, scale=2.0, norm_type=n, norm_kwargs=k, foreach=False),
            shapes=(shape,))
        assert drift < 1e-3, (role, drift)
