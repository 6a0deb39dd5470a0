"""Numerical risks of the reference-free losses: ORPO when an averaged log-prob rounds to 0
(log1mexp(0) = -inf, TRL PR #5339), AlphaPO's exponential reward, and |inputs| ~ 1e4 / bf16 / fp16."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo

NAMES = ("alphapo", "cpo", "orpo", "simpo")


def batch(sc, sr, nc, nr, dtype=torch.float32):
    sc = torch.tensor(sc, dtype=torch.float64).to(dtype).requires_grad_(True)
    sr = torch.tensor(sr, dtype=torch.float64).to(dtype).requires_grad_(True)
    outputs = {"policy_chosen_logps": sc, "policy_rejected_logps": sr,
               "chosen_lengths": torch.tensor(nc), "rejected_lengths": torch.tensor(nr)}
    return outputs, sc, sr


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("average", [0.0, -1e-10, -0.0])
def test_orpo_finite_when_an_average_logp_rounds_to_zero(dtype, average):
    loss = swift_zoo.build_loss("orpo")
    n = 5
    # pair 0: rejected average at the edge; pair 1: chosen average at the edge; pair 2: both
    outputs, sc, sr = batch([-3.0, average * n, average * n], [average * n, -4.0, average * n], [n] * 3, [n] * 3, dtype)
    value = loss(outputs)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(sc.grad).all() and torch.isfinite(sr.grad).all()
    # the direction is still right: raising a rejected log-prob raises the loss, raising a chosen one lowers it
    assert sr.grad[0] > 0
    assert sc.grad[1] < 0
    for metric in loss.metrics.values():
        assert torch.isfinite(metric)


def test_orpo_at_zero_equals_the_formula_at_the_clamp():
    # value at A = 0 is the formula at A = -1e-6 (the documented clamp); the gradient is the formula's
    # derivative there (straight-through), computed here by finite differences in float64
    lam, eps = 0.1, 1e-6

    def formula(ac, ar):
        log_odds = (ac - ar) - (math.log(-math.expm1(ac)) - math.log(-math.expm1(ar)))
        return -ac - lam * (-math.log1p(math.exp(-log_odds)))

    loss = swift_zoo.build_loss("orpo", beta=lam)
    outputs, sc, sr = batch([-2.0], [0.0], [2], [3], torch.float64)
    value = loss(outputs)
    value.backward()
    assert value.item() == pytest.approx(formula(-1.0, -eps), rel=1e-9)
    h = 1e-9
    d_ar = (formula(-1.0, -eps + h) - formula(-1.0, -eps - h)) / (2 * h)
    assert sr.grad.item() == pytest.approx(d_ar / 3, rel=1e-4)


def test_orpo_exact_below_the_clamp():
    # A = -1e-5 is below the clamp: no change to value or gradient vs the exact formula
    loss = swift_zoo.build_loss("orpo")
    outputs, sc, sr = batch([-1e-5], [-2.0], [1], [1], torch.float64)
    value = loss(outputs)
    log_odds = (-1e-5 + 2.0) - (math.log(-math.expm1(-1e-5)) - math.log(-math.expm1(-2.0)))
    assert value.item() == pytest.approx(1e-5 + 0.1 * math.log1p(math.exp(-log_odds)), rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("seed", [0, 1])
def test_finite_at_large_magnitudes_of_either_sign(name, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    big = 6e4 if dtype == torch.float16 else 1e4  # fp16 tops out at 65504
    sc = (torch.rand(6, generator=gen) * 2 - 1) * big
    sr = (torch.rand(6, generator=gen) * 2 - 1) * big
    sc[0], sr[0] = -big, big  # chosen impossible, rejected "log-prob" far above 0
    sc[1], sr[1] = 0.0, -big
    n = torch.randint(1, 4, (6,), generator=gen)
    outputs, c, r = batch(sc.tolist(), sr.tolist(), n.tolist(), n.tolist(), dtype)
    loss = swift_zoo.build_loss(name)
    value = loss(outputs)
    value.backward()
    assert torch.isfinite(value), value
    assert torch.isfinite(c.grad).all() and torch.isfinite(r.grad).all()


@pytest.mark.parametrize("alpha", [0.25, 2.0, -1.0, 1e-4])
def test_alphapo_reward_capped_not_infinite(alpha):
    loss = swift_zoo.build_loss("alphapo", alpha=alpha)
    outputs, sc, sr = batch([-1.0, -5000.0], [-9000.0, -2.0], [1, 1], [1, 1])
    value = loss(outputs)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(sc.grad).all() and torch.isfinite(sr.grad).all()
    assert all(torch.isfinite(v) for v in loss.metrics.values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_alphapo_gives_the_float32_loss_of_the_same_values_in_every_dtype(dtype):
    """The reward's exponent guard used to depend on the input dtype: 2e22 in bfloat16, 1.3 in float16 for
    the same log-probs (mean log-prob about -200, as the suite's x100 inputs give)."""
    loss = swift_zoo.build_loss("alphapo")
    chosen, rejected = torch.tensor([-2246.0, -660.0]).to(dtype), torch.tensor([-1860.0, -1531.0]).to(dtype)
    lengths = {"chosen_lengths": torch.tensor([11, 3]), "rejected_lengths": torch.tensor([10, 9])}
    low = loss({"policy_chosen_logps": chosen, "policy_rejected_logps": rejected, **lengths})
    full = loss({"policy_chosen_logps": chosen.float(), "policy_rejected_logps": rejected.float(), **lengths})
    torch.testing.assert_close(low, full, rtol=1e-6, atol=0)
    assert loss.metrics["reward_margin"] != 0  # past the guard, rewards still order the completions


def test_alphapo_reward_continues_as_the_tangent_past_the_guard():
    from swift_loss_zoo.reference_free.alphapo import EXPONENT_CAP, alpha_reward

    alpha = 0.5
    at_cap = -EXPONENT_CAP / alpha  # the mean log-prob where -alpha * A reaches the guard
    means = torch.tensor([at_cap + 1.0, at_cap, at_cap - 3.0], dtype=torch.float64, requires_grad=True)
    reward = alpha_reward(means, alpha)
    reward.sum().backward()
    exact = -torch.expm1(-alpha * means[:2].detach()) / alpha
    torch.testing.assert_close(reward[:2].detach(), exact)  # the formula itself up to the guard
    tangent = -(math.expm1(EXPONENT_CAP) + math.exp(EXPONENT_CAP) * alpha * 3.0) / alpha
    assert reward[2].item() == pytest.approx(tangent, rel=1e-12)
    assert means.grad[2].item() == pytest.approx(math.exp(EXPONENT_CAP), rel=1e-12)  # d reward / dA = e^cap
