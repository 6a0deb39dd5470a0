"""Bradley-Terry reward-model loss against an independent float64 formula (TRL RewardTrainer)."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_zoo import ConfigError


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def bt_reference(chosen, rejected, margin=None, coefficient=None):
    """TRL: mean(-logsigmoid(c - r - m)) + coefficient * mean((c + r)^2), as two separate means."""
    n = len(chosen)
    margin = margin or [0.0] * n
    main = sum(-log_sigmoid(c - r - m) for c, r, m in zip(chosen, rejected, margin)) / n
    if coefficient is None:
        return main
    return main + coefficient * sum((c + r) ** 2 for c, r in zip(chosen, rejected)) / n


def finite_difference(fn, values, h=1e-6):
    grads = []
    for i in range(len(values)):
        up, down = list(values), list(values)
        up[i] += h
        down[i] -= h
        grads.append((fn(up) - fn(down)) / (2 * h))
    return torch.tensor(grads, dtype=torch.float64)


def make_batch(seed, batch_size):
    gen = torch.Generator().manual_seed(seed)
    chosen = 3 * torch.randn(batch_size, generator=gen, dtype=torch.float64)
    rejected = 3 * torch.randn(batch_size, generator=gen, dtype=torch.float64)
    margin = torch.rand(batch_size, generator=gen, dtype=torch.float64)
    return chosen, rejected, margin


def run(loss, chosen, rejected, margin=None, **kw):
    chosen, rejected = chosen.clone().requires_grad_(True), rejected.clone().requires_grad_(True)
    outputs = {"chosen_rewards": chosen, "rejected_rewards": rejected}
    if margin is not None:
        outputs["margin"] = margin
    value = loss(outputs, **kw)
    value.backward()
    return value, chosen.grad, rejected.grad


@pytest.mark.parametrize("coefficient", [None, 0.0, 0.01, 0.5])
@pytest.mark.parametrize("with_margin", [False, True])
@pytest.mark.parametrize(("seed", "batch_size"), [(0, 1), (1, 5), (2, 8)])
def test_value_and_gradients_match_formula(coefficient, with_margin, seed, batch_size):
    chosen, rejected, margin = make_batch(seed, batch_size)
    loss = swift_zoo.build_loss("bradley_terry", center_rewards_coefficient=coefficient)
    value, grad_c, grad_r = run(loss, chosen, rejected, margin if with_margin else None)
    c, r = chosen.tolist(), rejected.tolist()
    m = margin.tolist() if with_margin else None
    assert value.item() == pytest.approx(bt_reference(c, r, m, coefficient), rel=1e-10, abs=1e-13)
    expected_c = finite_difference(lambda v: bt_reference(v, r, m, coefficient), c)
    expected_r = finite_difference(lambda v: bt_reference(c, v, m, coefficient), r)
    torch.testing.assert_close(grad_c, expected_c, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(grad_r, expected_r, rtol=1e-5, atol=1e-9)


def test_metrics_accuracy_and_margin():
    loss = swift_zoo.build_loss("bradley_terry")
    loss({"chosen_rewards": torch.tensor([2.0, -1.0, 0.5, 3.0]),
          "rejected_rewards": torch.tensor([1.0, 0.0, 0.5, -1.0])})
    assert loss.metrics["accuracy"].item() == pytest.approx(0.5)  # ties do not count as correct
    assert loss.metrics["margin"].item() == pytest.approx((1.0 - 1.0 + 0.0 + 4.0) / 4)


def test_split_exact_with_global_count():
    chosen, rejected, margin = make_batch(3, 6)
    loss = swift_zoo.build_loss("bradley_terry", center_rewards_coefficient=0.01)
    full, full_c, full_r = run(loss, chosen, rejected, margin)
    parts = [run(loss, chosen[a:b], rejected[a:b], margin[a:b], num_items_in_batch=6) for a, b in ((0, 4), (4, 6))]
    assert sum(p[0].item() for p in parts) == pytest.approx(full.item(), rel=1e-12)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), full_c)
    torch.testing.assert_close(torch.cat([p[2] for p in parts]), full_r)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_finite_at_large_rewards(dtype):
    big = 6e4 if dtype == torch.float16 else 1e4
    chosen = torch.tensor([big, -big, 0.0], dtype=dtype, requires_grad=True)
    rejected = torch.tensor([-big, big, big], dtype=dtype, requires_grad=True)
    loss = swift_zoo.build_loss("bradley_terry", center_rewards_coefficient=0.01)
    value = loss({"chosen_rewards": chosen, "rejected_rewards": rejected})
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()


@pytest.mark.parametrize(("bad", "expected"), [
    (-0.01, ">= 0"), (float("nan"), "a finite number >= 0"), (float("inf"), "a finite number >= 0")])
def test_hyperparameter_validation(bad, expected):
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("bradley_terry", center_rewards_coefficient=bad)
    assert info.value.key == "center_rewards_coefficient"
    assert info.value.expected == expected
    assert info.value.found is bad or info.value.found == bad
    assert "bradley_terry" in str(info.value) and repr(bad) in str(info.value)


@pytest.mark.parametrize("name", ["bradley_terry", "reward_model"])
def test_build_loss_and_metadata(name):
    loss = swift_zoo.build_loss(name)
    assert type(loss).name == "bradley_terry" and loss.reduction_unit == "pair"
    assert loss.center_rewards_coefficient is None
    assert {spec.key: spec.differentiable for spec in loss.inputs} == {
        "chosen_rewards": True, "rejected_rewards": True, "margin": False}
