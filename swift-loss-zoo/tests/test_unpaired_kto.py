"""KTO against an independent float64 formula; the KL reference point with and without ``kl_baseline``."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_zoo import ConfigError, LossInputError


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def kto_reference(policy, reference, desirable, z0, *, beta=0.1, desirable_weight=1.0, undesirable_weight=1.0):
    """Plain-math KTO (TRL ``kto_loss``): mean over samples of the weighted per-sample losses."""
    total = 0.0
    for p, r, d, z in zip(policy, reference, desirable, z0):
        ratio = p - r
        if d:
            total += desirable_weight * (1 - sigmoid(beta * (ratio - z)))
        else:
            total += undesirable_weight * (1 - sigmoid(beta * (z - ratio)))
    return total / len(policy)


def batch_z0(policy_kl, reference_kl):
    return max(0.0, sum(p - r for p, r in zip(policy_kl, reference_kl)) / len(policy_kl))


def make_batch(seed: int, batch_size: int, kl_shift: float = 0.0):
    gen = torch.Generator().manual_seed(seed)

    def logps(scale=1.0):
        return -scale * (1 + 10 * torch.rand(batch_size, generator=gen, dtype=torch.float64))

    desirable = torch.rand(batch_size, generator=gen) < 0.5
    desirable[0], desirable[-1] = True, False
    return {
        "policy_logps": logps(),
        "reference_logps": logps(),
        "is_desirable": desirable,
        "policy_kl_logps": logps() + kl_shift,
        "reference_kl_logps": logps(),
    }


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


KWARGS = [{}, {"beta": 0.5}, {"beta": 0.3, "desirable_weight": 1.33, "undesirable_weight": 0.5}]


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize(("seed", "batch_size", "kl_shift"), [(0, 4, 3.0), (1, 7, 5.0), (2, 2, -8.0), (3, 5, 0.0)])
def test_batch_estimated_reference_point_matches_formula(kwargs, seed, batch_size, kl_shift):
    outputs = make_batch(seed, batch_size, kl_shift)
    loss = swift_zoo.build_loss("kto", **kwargs)
    value, grad = run(loss, outputs)

    z0 = batch_z0(outputs["policy_kl_logps"].tolist(), outputs["reference_kl_logps"].tolist())
    if kl_shift < 0:
        assert z0 == 0.0  # the clamp is exercised
    reference, desirable = outputs["reference_logps"].tolist(), outputs["is_desirable"].tolist()
    z = [z0] * batch_size

    def formula(policy):
        return kto_reference(policy, reference, desirable, z, **kwargs)

    policy = outputs["policy_logps"].tolist()
    assert value.item() == pytest.approx(formula(policy), rel=1e-10, abs=1e-13)
    # z0 is detached: the gradient holds z0 fixed (finite differences never move the KL inputs)
    torch.testing.assert_close(grad, finite_difference(formula, policy), rtol=1e-5, atol=1e-9)
    assert loss.metrics["kl"].item() == pytest.approx(z0, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("shape", ["scalar", "batch"])
def test_kl_baseline_input_replaces_the_batch_estimate(shape):
    outputs = make_batch(4, 5, kl_shift=2.0)
    baseline = torch.tensor(0.7, dtype=torch.float64)
    given = dict(outputs, kl_baseline=baseline if shape == "scalar" else baseline.expand(5).clone())
    loss = swift_zoo.build_loss("kto", beta=0.4)
    value, grad = run(loss, given)
    reference, desirable = outputs["reference_logps"].tolist(), outputs["is_desirable"].tolist()

    def formula(policy):
        return kto_reference(policy, reference, desirable, [0.7] * 5, beta=0.4)

    assert value.item() == pytest.approx(formula(outputs["policy_logps"].tolist()), rel=1e-10)
    torch.testing.assert_close(grad, finite_difference(formula, outputs["policy_logps"].tolist()), rtol=1e-5, atol=1e-9)
    # the mismatched completions are not needed when the baseline is given
    without_kl = {k: v for k, v in given.items() if "kl_logps" not in k}
    assert loss(without_kl).item() == pytest.approx(value.item(), rel=1e-14)


def test_kl_baseline_is_clamped_at_zero_and_detached():
    outputs = {k: v for k, v in make_batch(5, 4).items() if "kl_logps" not in k}
    baseline = torch.tensor([-3.0, -3.0, -3.0, -3.0], dtype=torch.float64, requires_grad=True)
    policy = outputs["policy_logps"].clone().requires_grad_(True)
    loss = swift_zoo.build_loss("kto")
    value = loss(dict(outputs, policy_logps=policy, kl_baseline=baseline))
    expected = kto_reference(outputs["policy_logps"].tolist(), outputs["reference_logps"].tolist(),
                             outputs["is_desirable"].tolist(), [0.0] * 4)
    assert value.item() == pytest.approx(expected, rel=1e-12)
    grad_policy, grad_baseline = torch.autograd.grad(value, (policy, baseline), allow_unused=True)
    assert grad_baseline is None and grad_policy is not None


def test_microbatch_split_exact_with_kl_baseline():
    outputs = make_batch(6, 6, kl_shift=4.0)
    full_batch_z0 = torch.tensor(batch_z0(outputs["policy_kl_logps"].tolist(), outputs["reference_kl_logps"].tolist()),
                                 dtype=torch.float64)
    loss = swift_zoo.build_loss("kto", beta=0.5, desirable_weight=1.2)
    full, full_grad = run(loss, dict(outputs, kl_baseline=full_batch_z0))
    assert full.item() == pytest.approx(run(loss, outputs)[0].item(), rel=1e-14)  # same as the batch estimate

    parts = []
    for a, b in ((0, 2), (2, 3), (3, 6)):
        part = {k: v[a:b] for k, v in outputs.items()}
        parts.append(run(loss, dict(part, kl_baseline=full_batch_z0), num_items_in_batch=6))
    assert sum(p[0].item() for p in parts) == pytest.approx(full.item(), rel=1e-12)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), full_grad)


def test_microbatch_split_without_kl_baseline_depends_on_the_split():
    # declared batch_dependent: each micro-batch estimates its own z0
    outputs = make_batch(7, 4, kl_shift=0.0)
    outputs["policy_kl_logps"] = outputs["reference_kl_logps"] + torch.tensor([8.0, 8.0, 0.0, 0.0], dtype=torch.float64)
    loss = swift_zoo.build_loss("kto", beta=0.5)
    full = run(loss, outputs)[0].item()
    halves = sum(run(loss, {k: v[a:b] for k, v in outputs.items()}, num_items_in_batch=4)[0].item()
                 for a, b in ((0, 2), (2, 4)))
    assert abs(halves - full) > 1e-3
    assert loss.batch_dependent and "kl_baseline" in loss.batch_dependent


def test_missing_reference_point_inputs_are_reported():
    outputs = {k: v for k, v in make_batch(8, 3).items() if k != "reference_kl_logps"}
    loss = swift_zoo.build_loss("kto")
    with pytest.raises(LossInputError) as info:
        loss(outputs)
    message = str(info.value)
    assert "kl_baseline" in message and "reference_kl_logps" in message and "missing" in message


def test_kl_baseline_of_wrong_shape_is_rejected():
    outputs = make_batch(9, 3)
    loss = swift_zoo.build_loss("kto")
    with pytest.raises(LossInputError) as info:
        loss(dict(outputs, kl_baseline=torch.zeros(5, dtype=torch.float64)))
    assert "kl_baseline" in str(info.value) and "(5,)" in str(info.value)


def test_weights_scale_each_class():
    outputs = make_batch(10, 6, kl_shift=1.0)
    base = swift_zoo.build_loss("kto")
    base(outputs)
    only_desirable = swift_zoo.build_loss("kto", desirable_weight=1.0, undesirable_weight=0.0)(outputs).item()
    only_undesirable = swift_zoo.build_loss("kto", desirable_weight=0.0, undesirable_weight=1.0)(outputs).item()
    weighted = swift_zoo.build_loss("kto", desirable_weight=2.0, undesirable_weight=0.25)(outputs).item()
    assert weighted == pytest.approx(2.0 * only_desirable + 0.25 * only_undesirable, rel=1e-12)
    assert base.metrics["count_chosen"].item() + base.metrics["count_rejected"].item() == 6


@pytest.mark.parametrize(
    ("kwargs", "key", "expected"),
    [({"beta": 0.0}, "beta", "> 0"), ({"desirable_weight": -1.0}, "desirable_weight", ">= 0"),
     ({"undesirable_weight": float("nan")}, "undesirable_weight", "a finite number >= 0")],
)
def test_hyperparameter_validation(kwargs, key, expected):
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("kto", **kwargs)
    assert info.value.key == key and info.value.expected == expected
    found = info.value.found
    assert found is kwargs[key] or found == kwargs[key]
    assert "kto" in str(info.value) and key in str(info.value) and repr(kwargs[key]) in str(info.value)


def test_build_loss_and_metadata():
    loss = swift_zoo.build_loss("kto")
    assert loss.reduction_unit == "sample" and loss.reference == "arXiv:2402.01306"
    assert (loss.beta, loss.desirable_weight, loss.undesirable_weight) == (0.1, 1.0, 1.0)
    optional = {spec.key for spec in loss.inputs if spec.optional}
    assert optional == {"policy_kl_logps", "reference_kl_logps", "kl_baseline"}
