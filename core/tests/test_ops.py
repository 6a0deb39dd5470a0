"""Shared numerics: log1mexp, masked reductions, the causal shift."""

from __future__ import annotations

import math

import pytest
import torch

from swift_zoo.ops import ld_tail_logps, log1mexp, masked_mean, masked_sum, masked_whiten, shift_labels


@pytest.mark.parametrize("x", [-1e-20, -1e-10, -1e-5, -0.3, -math.log(2), -0.7, -5.0, -50.0, -800.0])
def test_log1mexp_matches_high_precision(x):
    import decimal

    decimal.getcontext().prec = 60
    d = decimal.Decimal(x)
    exact = float((1 - d.exp()).ln())
    got = log1mexp(torch.tensor(x, dtype=torch.float64)).item()
    assert got == pytest.approx(exact, rel=1e-12, abs=1e-300)


def test_log1mexp_float32_finite_with_finite_gradients():
    x = torch.tensor([-1e-7, -1e-3, -1.0, -30.0], requires_grad=True)
    y = log1mexp(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()


def test_masked_ops_ignore_nan_and_inf_at_masked_positions():
    x = torch.tensor([1.0, 2.0, float("nan"), float("inf")])
    m = torch.tensor([True, True, False, False])
    assert masked_sum(x, m).item() == 3.0
    assert masked_mean(x, m).item() == 1.5
    assert masked_mean(x, torch.zeros(4, dtype=torch.bool)).item() == 0.0


def test_masked_whiten_has_zero_mean_unit_variance_over_kept():
    torch.manual_seed(0)
    x = torch.randn(50, dtype=torch.float64) * 3 + 7
    m = torch.rand(50) > 0.3
    w = masked_whiten(x, m)
    kept = w[m]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert kept.var().item() == pytest.approx(1.0, rel=1e-6)
    assert (w[~m] == 0).all()


def test_shift_labels_pads_instead_of_wrapping():
    labels = torch.tensor([[5, 6, 7], [8, -100, 9]])
    assert shift_labels(labels).tolist() == [[6, 7, -100], [-100, 9, -100]]


def test_ld_tail_logps_matches_a_loop():
    # LD-DPO's tails: the scored tokens past min(n_chosen, n_rejected), masks not contiguous
    generator = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(3, 7, generator=generator), torch.randn(3, 7, generator=generator)
    chosen_mask = torch.tensor([[0, 1, 1, 1, 1, 0, 0], [1, 1, 0, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1]])
    rejected_mask = torch.tensor([[0, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 1]])
    tails = ld_tail_logps(chosen, chosen_mask, rejected, rejected_mask)
    for row in range(3):
        common = min(int(chosen_mask[row].sum()), int(rejected_mask[row].sum()))
        for tail, tokens, mask in ((tails[0], chosen, chosen_mask), (tails[1], rejected, rejected_mask)):
            scored = [float(tokens[row, t]) for t in range(7) if mask[row, t]]
            assert tail[row].item() == pytest.approx(sum(scored[common:]), abs=1e-6)
