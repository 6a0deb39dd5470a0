"""GRPO-family losses (grpo, bnpo, dr_grpo, dapo, cispo, sapo, gspo) against float64 loops."""

from __future__ import annotations

import math

import policy_reference
import pytest
import torch

import swift_zoo
from swift_loss_zoo.policy import (
    BNPOLoss,
    CISPOLoss,
    DAPOLoss,
    DrGRPOLoss,
    GRPOLoss,
    GSPOLoss,
    SAPOLoss,
)
from swift_zoo import ConfigError, LossInputError

F64 = torch.float64


def assert_close(actual, expected, *, rtol=1e-12, atol=1e-14):
    """``torch.allclose`` with a message (``torch.testing`` costs seconds to import)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), (
        f"max |diff| {(actual - expected).abs().max().item():.3e}\nactual {actual}\nexpected {expected}")


# ------------------------------------------------------------------ reference
def reference_loss(kind, lp, old, ref, adv, mask, *, eps_low=0.2, eps_high=0.2, beta=0.0, max_len=None,
                   tau_pos=1.0, tau_neg=1.05, delta=None):
    """The published objective written token by token with Python control flow (float64)."""
    if old is None:
        old = lp.detach()
    units = []
    for i in range(lp.shape[0]):
        tokens = [t for t in range(lp.shape[1]) if mask[i, t]]
        if not tokens:
            continue
        a = float(adv[i])

        def kl(t, i=i):
            x = ref[i, t] - lp[i, t]
            return torch.exp(x) - x - 1.0

        if kind == "gspo":
            s = torch.exp(sum(lp[i, t] - old[i, t] for t in tokens) / len(tokens))
            sv = s.item()
            clipped = s if 1 - eps_low <= sv <= 1 + eps_high else torch.tensor(
                min(max(sv, 1 - eps_low), 1 + eps_high), dtype=F64)
            unit = -min(s * a, clipped * a, key=lambda x: x.item())
            if beta:
                unit = unit + beta * sum(kl(t) for t in tokens) / len(tokens)
            units.append(unit)
            continue
        token_losses = []
        for t in tokens:
            r = torch.exp(lp[i, t] - old[i, t])
            rv = r.item()
            if kind == "cispo":
                cap = 1 + eps_high
                w = min(rv, cap) if eps_low is None else min(max(rv, 1 - eps_low), cap)
                value = -w * a * lp[i, t]
            elif kind == "sapo":
                tau = tau_pos if a > 0 else tau_neg
                value = -(4.0 / tau) * torch.sigmoid(tau * (r - 1.0)) * a
            else:
                if 1 - eps_low <= rv <= 1 + eps_high:
                    clipped = r
                else:
                    clipped = torch.tensor(min(max(rv, 1 - eps_low), 1 + eps_high), dtype=F64)
                capped = r if delta is None or rv <= delta else torch.tensor(delta, dtype=F64)
                value = -min(capped * a, clipped * a, key=lambda x: x.item())
            if beta:
                value = value + beta * kl(t)
            token_losses.append(value)
        if kind in ("grpo", "sapo"):
            units.append(sum(token_losses) / len(tokens))
        elif kind == "dr_grpo":
            units.append(sum(token_losses) / max_len)
        else:
            units.extend(token_losses)
    return sum(units) / max(len(units), 1)


def make_batch(seed, batch, seq, *, spread=0.3, empty_row=False):
    x = policy_reference.make_batch(seed, batch, seq, spread=spread, empty_row=empty_row)
    return (x["per_token_logps"], x["old_per_token_logps"], x["ref_per_token_logps"], x["advantages"],
            x["completion_mask"])


CASES = [
    ("grpo", GRPOLoss, {}, {}),
    ("grpo", GRPOLoss, {"epsilon_low": 0.1, "epsilon_high": 0.3, "beta": 0.04}, {"eps_low": 0.1, "eps_high": 0.3}),
    ("bnpo", BNPOLoss, {"beta": 0.1}, {}),
    ("bnpo", BNPOLoss, {"delta": 1.3}, {"delta": 1.3}),
    ("grpo", GRPOLoss, {"delta": 1.25, "epsilon_high": 0.1}, {"delta": 1.25, "eps_high": 0.1}),
    ("dapo", DAPOLoss, {}, {"eps_high": 0.28}),
    ("dr_grpo", DrGRPOLoss, {"max_completion_length": 9, "beta": 0.02}, {"max_len": 9}),
    ("cispo", CISPOLoss, {}, {"eps_low": None, "eps_high": 4.0}),
    ("cispo", CISPOLoss, {"epsilon_low": 0.1, "epsilon_high": 0.2, "beta": 0.05},
     {"eps_low": 0.1, "eps_high": 0.2}),
    ("sapo", SAPOLoss, {}, {}),
    ("sapo", SAPOLoss, {"temperature_pos": 0.5, "temperature_neg": 2.0, "beta": 0.03},
     {"tau_pos": 0.5, "tau_neg": 2.0}),
    ("gspo", GSPOLoss, {}, {"eps_low": 3e-4, "eps_high": 4e-4}),
    ("gspo", GSPOLoss, {"epsilon_low": 0.05, "epsilon_high": 0.1, "beta": 0.04}, {"eps_low": 0.05, "eps_high": 0.1}),
]


def _run(loss, lp, old, ref, adv, mask, num_items=None):
    leaf = lp.clone().requires_grad_(True)
    outputs = {"per_token_logps": leaf, "advantages": adv, "completion_mask": mask, "ref_per_token_logps": ref}
    if old is not None:
        outputs["old_per_token_logps"] = old
    value = loss(outputs, num_items_in_batch=num_items)
    value.backward()
    return value.detach(), leaf.grad


@pytest.mark.parametrize(("kind", "cls", "kwargs", "ref_kwargs"), CASES)
@pytest.mark.parametrize(("seed", "batch", "seq", "on_policy"), [(0, 4, 6, False), (1, 3, 9, False), (2, 5, 4, True)])
def test_value_and_gradient_match_reference(kind, cls, kwargs, ref_kwargs, seed, batch, seq, on_policy):
    lp, old, ref, adv, mask = make_batch(seed, batch, seq)
    old = None if on_policy else old
    beta = kwargs.get("beta", 0.0)
    value, grad = _run(cls(**kwargs), lp, old, ref, adv, mask)
    leaf = lp.clone().requires_grad_(True)
    expected = reference_loss(kind, leaf, old, ref, adv, mask, beta=beta, **ref_kwargs)
    expected.backward()
    assert_close(value, expected.detach(), rtol=1e-10, atol=1e-12)
    assert_close(grad, leaf.grad, rtol=1e-10, atol=1e-12)
    assert grad.abs().sum() > 0


def test_some_reference_cases_are_really_clipped():
    # The comparison above must exercise both clipping branches, or it cannot catch a wrong clip.
    lp, old, ref, adv, mask = make_batch(0, 4, 6)
    loss = GRPOLoss()
    _run(loss, lp, old, ref, adv, mask)
    assert 0 < loss.metrics["clip_fraction"] < 1


# --------------------------------------------------------- family-specific risks
def test_grpo_loss_is_zero_while_gradient_is_not():
    # On-policy (ratio exactly 1), group-centred advantages: the value is 0, the gradient is -A_i / n_i / N.
    lp = -torch.rand(4, 5, dtype=F64, generator=torch.Generator().manual_seed(3)) - 0.1
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 1, 0]])
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=F64)
    loss = GRPOLoss()
    leaf = lp.clone().requires_grad_(True)
    value = loss({"per_token_logps": leaf, "advantages": adv, "completion_mask": mask})
    assert value.item() == 0.0
    value.backward()
    lengths = mask.sum(-1, keepdim=True).to(F64)
    expected = -(adv[:, None] / lengths / 4.0) * mask
    assert_close(leaf.grad, expected, rtol=0, atol=1e-15)
    assert leaf.grad.abs().sum() > 0.5
    assert loss.metrics["ratio_mean"].item() == 1.0


def _single_token(ratio, advantage, loss):
    lp = torch.tensor([[-1.0]], dtype=F64, requires_grad=True)
    old = lp.detach() - math.log(ratio)
    value = loss({"per_token_logps": lp, "old_per_token_logps": old, "advantages": torch.tensor([advantage], dtype=F64),
                  "completion_mask": torch.ones(1, 1)})
    value.backward()
    return value.item(), lp.grad.item(), {k: v.item() for k, v in loss.metrics.items()}


@pytest.mark.parametrize(("ratio", "advantage", "clipped"), [
    (1.3, 1.0, True),    # above 1 + eps with A > 0: no gradient
    (1.3, -1.0, False),  # above 1 + eps with A < 0: the unclipped (worse) branch is kept
    (0.7, -1.0, True),   # below 1 - eps with A < 0: no gradient
    (0.7, 1.0, False),   # below 1 - eps with A > 0: kept
    (1.19, 1.0, False),  # inside the range
    (0.81, -1.0, False),
])
def test_clipping_at_ratio_boundaries(ratio, advantage, clipped):
    value, grad, metrics = _single_token(ratio, advantage, GRPOLoss())
    bounded = min(max(ratio, 0.8), 1.2)
    assert value == pytest.approx(-min(ratio * advantage, bounded * advantage), rel=1e-12)
    if clipped:
        assert grad == 0.0
        assert metrics["clip_fraction"] == 1.0
    else:
        assert grad == pytest.approx(-advantage * ratio, rel=1e-12)  # d(rho)/d(logp) = rho
        assert metrics["clip_fraction"] == 0.0


def test_epsilon_high_is_asymmetric():
    # ratio 1.25, A > 0: clipped with the symmetric 0.2 range, not with DAPO's clip-higher 0.28.
    _, grpo_grad, grpo_metrics = _single_token(1.25, 1.0, GRPOLoss())
    _, dapo_grad, dapo_metrics = _single_token(1.25, 1.0, DAPOLoss())
    assert grpo_grad == 0.0 and grpo_metrics["clip_fraction_high"] == 1.0
    assert dapo_grad == pytest.approx(-1.25) and dapo_metrics["clip_fraction_high"] == 0.0
    # The low side is unchanged by epsilon_high: ratio 0.79 with A < 0 is clipped by both.
    assert _single_token(0.79, -1.0, DAPOLoss())[1] == 0.0
    assert _single_token(0.79, -1.0, DAPOLoss())[2]["clip_fraction_low"] == 1.0
    # epsilon_low alone moves the low side.
    assert _single_token(0.79, -1.0, DAPOLoss(epsilon_low=0.3))[1] == pytest.approx(0.79)


def test_delta_caps_the_unclipped_branch():
    # ratio 3, A < 0: plain GRPO keeps the unbounded -rho A; with delta = 2 the loss stops growing.
    assert _single_token(3.0, -1.0, GRPOLoss())[:2] == pytest.approx((3.0, 3.0))
    value, grad, _ = _single_token(3.0, -1.0, GRPOLoss(delta=2.0))
    assert value == pytest.approx(2.0) and grad == 0.0
    # Below delta nothing changes.
    assert _single_token(1.5, -1.0, GRPOLoss(delta=2.0))[:2] == pytest.approx((1.5, 1.5))


def test_cispo_keeps_gradient_of_clipped_tokens():
    # Where GRPO drops the token (grad 0), CISPO keeps -clip(rho) * A as the gradient.
    loss = CISPOLoss(epsilon_high=0.2)
    value, grad, metrics = _single_token(1.5, 1.0, loss)
    assert grad == pytest.approx(-1.2, rel=1e-12)
    assert value == pytest.approx(-1.2 * 1.0 * -1.0, rel=1e-12)
    assert metrics["clip_fraction_high"] == 1.0
    # Default: no lower bound on the weight.
    assert _single_token(0.01, -1.0, CISPOLoss())[1] == pytest.approx(0.01, rel=1e-12)


def test_gspo_clips_whole_sequences():
    # One sequence whose mean log-ratio leaves the range: every token of it loses its gradient.
    lp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -2.0, -0.5]], dtype=F64, requires_grad=True)
    shift = torch.tensor([[0.01, 0.0, -0.005], [0.0, 0.0, 0.0]], dtype=F64)
    old = lp.detach() - shift
    loss = GSPOLoss()
    value = loss({"per_token_logps": lp, "old_per_token_logps": old, "advantages": torch.tensor([1.0, 1.0], dtype=F64),
                  "completion_mask": torch.ones(2, 3)})
    value.backward()
    assert torch.all(lp.grad[0] == 0)
    assert_close(lp.grad[1], torch.full((3,), -1.0 / 3 / 2, dtype=F64))
    assert loss.metrics["clip_fraction_high"].item() == 0.5


def test_sapo_gate_has_unit_slope_on_policy():
    # d/d(logp) of -(4/tau) sigmoid(tau (rho - 1)) A at rho = 1 is -A for any tau.
    for tau in (0.5, 1.0, 3.0):
        _, grad, metrics = _single_token(1.0, 2.0, SAPOLoss(temperature_pos=tau))
        assert grad == pytest.approx(-2.0, rel=1e-12)
        assert metrics["gate_gradient_mean"] == pytest.approx(1.0)


# ------------------------------------------------- units and micro-batch split
@pytest.mark.parametrize(("cls", "kwargs", "unit"), [
    (GRPOLoss, {}, "sequence"), (BNPOLoss, {}, "token"), (DAPOLoss, {}, "token"), (CISPOLoss, {}, "token"),
    (SAPOLoss, {}, "sequence"), (GSPOLoss, {"epsilon_low": 0.1, "epsilon_high": 0.1}, "sequence"),
    (DrGRPOLoss, {"max_completion_length": 8}, "sequence"),
])
def test_count_units_and_exact_micro_batch_split(cls, kwargs, unit):
    lp, old, ref, adv, mask = make_batch(5, 6, 7, empty_row=True)
    loss = cls(beta=0.05, **kwargs)
    full = {"per_token_logps": lp, "old_per_token_logps": old, "ref_per_token_logps": ref, "advantages": adv,
            "completion_mask": mask}
    count = loss.count_units(full)
    expected = int(mask.sum()) if unit == "token" else int((mask.sum(-1) > 0).sum())
    assert loss.reduction_unit == unit
    assert int(count) == expected and expected < (mask.numel() if unit == "token" else 6)
    full_value, full_grad = _run(loss, lp, old, ref, adv, mask)
    parts = [slice(0, 2), slice(2, 3), slice(3, 6)]
    assert sum(int(loss.count_units({k: v[p] for k, v in full.items()})) for p in parts) == expected
    value = torch.zeros((), dtype=F64)
    grads = []
    for p in parts:
        v, g = _run(loss, lp[p], old[p], ref[p], adv[p], mask[p], num_items=count)
        value, grads = value + v, [*grads, g]
    assert_close(value, full_value, rtol=1e-12, atol=1e-14)
    assert_close(torch.cat(grads), full_grad, rtol=1e-12, atol=1e-14)


def test_empty_rows_do_not_dilute_the_sequence_mean():
    lp, old, ref, adv, mask = make_batch(7, 4, 5)
    with_empty = (torch.cat([lp, lp[:1]]), torch.cat([old, old[:1]]), torch.cat([ref, ref[:1]]),
                  torch.cat([adv, adv[:1]]), torch.cat([mask, torch.zeros_like(mask[:1])]))
    base, _ = _run(GRPOLoss(), lp, old, ref, adv, mask)
    padded, grad = _run(GRPOLoss(), *with_empty)
    assert_close(padded, base, rtol=1e-13, atol=0)
    assert torch.all(grad[-1] == 0)


def test_masked_positions_and_extreme_values_stay_finite():
    lp, old, ref, adv, mask = make_batch(8, 3, 6)
    lp = lp.masked_fill(mask == 0, float("-inf"))
    old = old.masked_fill(mask == 0, float("nan"))
    for cls in (GRPOLoss, DAPOLoss, CISPOLoss, SAPOLoss, GSPOLoss):
        value, grad = _run(cls(beta=0.1), lp, old * 1e4, ref, adv, mask)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), cls.name
        assert torch.all(grad[mask == 0] == 0)


# ------------------------------------------------------------------ validation
def test_beta_needs_the_reference_logps():
    lp, old, _, adv, mask = make_batch(0, 2, 3)
    with pytest.raises(LossInputError, match=r"grpo: beta=0.04 .*ref_per_token_logps.*\[B, T\].*got none"):
        GRPOLoss(beta=0.04)({"per_token_logps": lp, "advantages": adv, "completion_mask": mask})
    # beta = 0 needs no reference (and reports no kl metric).
    loss = GRPOLoss()
    loss({"per_token_logps": lp, "old_per_token_logps": old, "advantages": adv, "completion_mask": mask})
    assert "kl" not in loss.metrics


@pytest.mark.parametrize(("name", "kwargs", "key", "expected"), [
    ("grpo", {"epsilon_low": 1.5}, "epsilon_low", "in (0.0, 1.0)"),
    ("dapo", {"epsilon_high": -0.1}, "epsilon_high", "> 0"),
    ("bnpo", {"beta": -0.01}, "beta", ">= 0"),
    ("gspo", {"epsilon_low": 0.0}, "epsilon_low", "in (0.0, 1.0)"),
    ("sapo", {"temperature_neg": 0.0}, "temperature_neg", "> 0"),
    ("dr_grpo", {"max_completion_length": 0}, "max_completion_length", "an integer in [1, 2147483647]"),
    ("cispo", {"epsilon_high": float("nan")}, "epsilon_high", "a finite number > 0"),
    ("dapo", {"delta": 1.2}, "delta", "None or a float >= 1 + epsilon_high = 1.28"),
    ("grpo", {"dual_clip": 1.0}, "dual_clip", "None or a float > 1"),
    ("grpo", {"loss_agg_mode": "token-sum"}, "loss_agg_mode",
     "one of 'token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'"),
    ("gmpo", {"loss_agg_mode": "token-mean"}, "loss_agg_mode",
     "one of 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'"),
    ("bnpo", {"kl_estimator": "k4"}, "kl_estimator", "one of 'k1', 'k2', 'k3', 'abs', 'k1+', 'k3+'"),
    ("dapo", {"rollout_correction": "token_clip"}, "rollout_correction",
     "one of 'token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask' or None"),
    ("grpo", {"rollout_correction_min": 3.0}, "rollout_correction_min", "<= rollout_correction_max = 2"),
    ("grpo", {"top_entropy_quantile": 1.5}, "top_entropy_quantile", "in [0.0, 1.0]"),
    ("vespo", {"rollout_correction": "sequence_mask"}, "rollout_correction", "None, 'token_truncate' or 'token_mask'"),
    ("clip_cov", {"clip_cov_ub": 0.5}, "clip_cov_ub", "> clip_cov_lb = 1"),
])
def test_bad_hyperparameters_are_rejected(name, kwargs, key, expected):
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss(name, **kwargs)
    assert info.value.key == key and info.value.expected == expected
    assert info.value.found is kwargs[key] or info.value.found == kwargs[key]
    assert name in str(info.value) and expected.replace("a number ", "") in str(info.value)
    assert str(kwargs[key]) in str(info.value)


def test_dr_grpo_requires_max_completion_length():
    with pytest.raises(ConfigError, match="missing required kwarg.*max_completion_length"):
        swift_zoo.build_loss("dr_grpo")


def test_defaults_follow_the_papers():
    assert (GRPOLoss().epsilon_low, GRPOLoss().epsilon_high, GRPOLoss().beta) == (0.2, 0.2, 0.0)
    assert DAPOLoss().epsilon_high == 0.28
    assert (GSPOLoss().epsilon_low, GSPOLoss().epsilon_high) == (3e-4, 4e-4)
    assert (CISPOLoss().epsilon_low, CISPOLoss().epsilon_high) == (None, 4.0)
    assert (SAPOLoss().temperature_pos, SAPOLoss().temperature_neg) == (1.0, 1.05)
