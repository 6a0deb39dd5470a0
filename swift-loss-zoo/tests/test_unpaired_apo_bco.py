"""APO-zero (unpaired) and BCO against independent float64 formulas; BCO's reward shift sources."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_zoo import ConfigError


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def apo_reference(policy, reference, desirable, *, beta=0.1, desirable_weight=1.0, undesirable_weight=1.0):
    total = 0.0
    for p, r, d in zip(policy, reference, desirable):
        total += desirable_weight * (1 - sigmoid(beta * (p - r))) if d else undesirable_weight * sigmoid(beta * (p - r))
    return total / len(policy)


def bco_reference(policy, reference, desirable, delta, *, beta=0.1):
    total = 0.0
    for p, r, d in zip(policy, reference, desirable):
        reward = beta * (p - r)
        total += -log_sigmoid(reward - delta) if d else -log_sigmoid(-(reward - delta))
    return total / len(policy)


def make_batch(seed: int, batch_size: int):
    gen = torch.Generator().manual_seed(seed)

    def logps():
        return -(1 + 20 * torch.rand(batch_size, generator=gen, dtype=torch.float64))

    desirable = torch.rand(batch_size, generator=gen) < 0.5
    desirable[0], desirable[-1] = True, False
    return {"policy_logps": logps(), "reference_logps": logps(), "is_desirable": desirable}


def run(loss, outputs, **kw):
    outputs = dict(outputs)
    leaf = outputs["policy_logps"].clone().requires_grad_(True)
    outputs["policy_logps"] = leaf
    value = loss(outputs, **kw)
    value.backward()
    return value, leaf.grad


def finite_difference(fn, values, h=1e-6):
    grads = []
    for i in range(len(values)):
        up, down = list(values), list(values)
        up[i] += h
        down[i] -= h
        grads.append((fn(up) - fn(down)) / (2 * h))
    return torch.tensor(grads, dtype=torch.float64)


def check_against(formula, value, grad, policy):
    assert value.item() == pytest.approx(formula(policy), rel=1e-10, abs=1e-13)
    torch.testing.assert_close(grad, finite_difference(formula, policy), rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------- APO-zero
@pytest.mark.parametrize(
    "kwargs", [{}, {"beta": 0.7}, {"beta": 0.2, "desirable_weight": 3.0, "undesirable_weight": 0.5}])
@pytest.mark.parametrize(("seed", "batch_size"), [(0, 4), (1, 7), (2, 2)])
def test_apo_zero_unpaired_matches_formula(kwargs, seed, batch_size):
    outputs = make_batch(seed, batch_size)
    value, grad = run(swift_zoo.build_loss("apo_zero_unpaired", **kwargs), outputs)
    reference, desirable = outputs["reference_logps"].tolist(), outputs["is_desirable"].tolist()
    check_against(lambda p: apo_reference(p, reference, desirable, **kwargs), value, grad,
                  outputs["policy_logps"].tolist())


def test_apo_zero_unpaired_splits_exactly():
    outputs = make_batch(3, 6)
    loss = swift_zoo.build_loss("apo_zero_unpaired", beta=0.5)
    full, full_grad = run(loss, outputs)
    parts = [run(loss, {k: v[a:b] for k, v in outputs.items()}, num_items_in_batch=6) for a, b in ((0, 1), (1, 6))]
    assert sum(p[0].item() for p in parts) == pytest.approx(full.item(), rel=1e-12)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), full_grad)
    assert loss.batch_dependent is None


# -------------------------------------------------------------------------------- BCO
@pytest.mark.parametrize("shape", ["scalar", "batch"])
@pytest.mark.parametrize(("seed", "batch_size", "beta"), [(0, 4, 0.1), (1, 7, 0.5), (2, 3, 1.0)])
def test_bco_with_reward_baseline_matches_formula(shape, seed, batch_size, beta):
    outputs = make_batch(seed, batch_size)
    baseline = torch.tensor(-0.3, dtype=torch.float64)
    given = dict(outputs, reward_baseline=baseline if shape == "scalar" else baseline.expand(batch_size).clone())
    loss = swift_zoo.build_loss("bco", beta=beta)
    value, grad = run(loss, given)
    reference, desirable = outputs["reference_logps"].tolist(), outputs["is_desirable"].tolist()
    check_against(lambda p: bco_reference(p, reference, desirable, -0.3, beta=beta), value, grad,
                  outputs["policy_logps"].tolist())
    assert loss.running_count.item() == 0  # the buffers are untouched on this path


def test_bco_with_constant_delta_matches_formula():
    outputs = make_batch(4, 5)
    loss = swift_zoo.build_loss("bco", beta=0.3, delta=0.25)
    value, grad = run(loss, outputs)
    reference, desirable = outputs["reference_logps"].tolist(), outputs["is_desirable"].tolist()
    check_against(lambda p: bco_reference(p, reference, desirable, 0.25, beta=0.3), value, grad,
                  outputs["policy_logps"].tolist())
    assert loss.metrics["delta"].item() == pytest.approx(0.25)


def rewards_of(outputs, beta):
    return [beta * (p - r) for p, r in zip(outputs["policy_logps"].tolist(), outputs["reference_logps"].tolist())]


def test_bco_running_mean_is_updated_before_use_like_trl():
    beta = 0.2
    first, second = make_batch(5, 4), make_batch(6, 6)
    loss = swift_zoo.build_loss("bco", beta=beta)

    # call 1: delta is the first batch's mean reward (the running mean starts empty)
    value, grad = run(loss, first)
    seen = rewards_of(first, beta)
    delta1 = sum(seen) / len(seen)
    reference, desirable = first["reference_logps"].tolist(), first["is_desirable"].tolist()
    # delta is detached: the reference gradient holds it fixed
    check_against(lambda p: bco_reference(p, reference, desirable, delta1, beta=beta), value, grad,
                  first["policy_logps"].tolist())

    # call 2: delta is the mean of every reward seen so far (TRL RunningMoments), not of batch means
    value = loss(second)
    seen += rewards_of(second, beta)
    delta2 = sum(seen) / len(seen)
    expected = bco_reference(second["policy_logps"].tolist(), second["reference_logps"].tolist(),
                             second["is_desirable"].tolist(), delta2, beta=beta)
    assert value.item() == pytest.approx(expected, rel=1e-10)
    assert loss.metrics["delta"].item() == pytest.approx(delta2, rel=1e-12)
    assert loss.running_count.item() == 10

    # eval mode reads the buffers without updating them; count_units never updates them
    loss.eval()
    loss(first)
    loss.count_units(first)
    assert loss.running_count.item() == 10
    assert loss.metrics["delta"].item() == pytest.approx(delta2, rel=1e-12)
    assert set(loss.state_dict()) == {"running_mean", "running_count"}


def test_bco_moving_average_variant():
    beta, momentum = 0.2, 0.9
    batches = [make_batch(seed, 4) for seed in (7, 8, 9)]
    loss = swift_zoo.build_loss("bco", beta=beta, delta_momentum=momentum)
    delta = None
    for outputs in batches:
        rewards = rewards_of(outputs, beta)
        mean = sum(rewards) / len(rewards)
        delta = mean if delta is None else momentum * delta + (1 - momentum) * mean
        value = loss(outputs)
        expected = bco_reference(outputs["policy_logps"].tolist(), outputs["reference_logps"].tolist(),
                                 outputs["is_desirable"].tolist(), delta, beta=beta)
        assert value.item() == pytest.approx(expected, rel=1e-10)


def test_bco_split_exact_with_baseline_and_declared_dependent_without():
    outputs = make_batch(10, 6)
    baseline = torch.full((6,), 0.1, dtype=torch.float64)
    loss = swift_zoo.build_loss("bco", beta=0.5)
    full, full_grad = run(loss, dict(outputs, reward_baseline=baseline))
    parts = [run(loss, {k: v[a:b] for k, v in dict(outputs, reward_baseline=baseline).items()}, num_items_in_batch=6)
             for a, b in ((0, 3), (3, 6))]
    assert sum(p[0].item() for p in parts) == pytest.approx(full.item(), rel=1e-12)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), full_grad)
    assert "reward_baseline" in loss.batch_dependent


@pytest.mark.parametrize(
    ("name", "kwargs", "key", "expected"),
    [
        ("apo_zero_unpaired", {"beta": -0.1}, "beta", "> 0"),
        ("apo_zero_unpaired", {"undesirable_weight": -2.0}, "undesirable_weight", ">= 0"),
        ("bco", {"beta": 0.0}, "beta", "> 0"),
        ("bco", {"delta": float("inf")}, "delta", "a finite number"),
        ("bco", {"delta_momentum": 1.0}, "delta_momentum", "in [0.0, 1.0)"),
    ],
)
def test_hyperparameter_validation(name, kwargs, key, expected):
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss(name, **kwargs)
    assert info.value.key == key and info.value.expected == expected
    assert info.value.found is kwargs[key] or info.value.found == kwargs[key]
    assert name in str(info.value) and key in str(info.value) and repr(kwargs[key]) in str(info.value)


@pytest.mark.parametrize(
    ("name", "reference"), [("apo_zero_unpaired", "arXiv:2408.06266"), ("bco", "arXiv:2404.04656")])
def test_build_loss_and_metadata(name, reference):
    loss = swift_zoo.build_loss(name)
    assert loss.name == name and loss.reference == reference and loss.reduction_unit == "sample"
    assert loss.beta == 0.1
