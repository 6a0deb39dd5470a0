"""PPO and the per-token KL penalty against float64 loops."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_loss_zoo.policy import KLPenaltyLoss, PPOLoss
from swift_zoo import ConfigError, LossInputError

F64 = torch.float64


def assert_close(actual, expected, *, rtol=1e-12, atol=1e-14):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), (
        f"max |diff| {(actual - expected).abs().max().item():.3e}\nactual {actual}\nexpected {expected}")


def make_ppo_batch(seed, batch, seq):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, seq)
    lp = -(0.05 + 2.0 * torch.rand(shape, generator=g, dtype=F64))
    old = lp + 0.3 * torch.randn(shape, generator=g, dtype=F64)
    returns = torch.randn(shape, generator=g, dtype=F64)
    old_values = returns + 0.4 * torch.randn(shape, generator=g, dtype=F64)
    values = old_values + 0.4 * torch.randn(shape, generator=g, dtype=F64)
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)
    return {
        "per_token_logps": lp,
        "old_per_token_logps": old,
        "advantages": torch.randn(shape, generator=g, dtype=F64),
        "returns": returns,
        "values": values,
        "old_values": old_values,
        "entropy": torch.rand(shape, generator=g, dtype=F64) + 0.2,
        "completion_mask": (torch.arange(seq)[None] < lengths[:, None]).long(),
    }


def _number(z):
    return z.item() if isinstance(z, torch.Tensor) else z


def reference_ppo(x, *, eps_low=0.2, eps_high=0.2, clip_v=0.2, vf_coef=0.1, ent_coef=0.0, clip_values=True):
    total, count = 0.0, 0
    batch, seq = x["per_token_logps"].shape
    for i in range(batch):
        for t in range(seq):
            if not x["completion_mask"][i, t]:
                continue
            r = torch.exp(x["per_token_logps"][i, t] - x["old_per_token_logps"][i, t])
            a = x["advantages"][i, t].item()
            rv = r.item()
            clipped = r if 1 - eps_low <= rv <= 1 + eps_high else min(max(rv, 1 - eps_low), 1 + eps_high)
            pg = max(-a * r, -a * clipped, key=_number)
            v, g, v_old = x["values"][i, t], x["returns"][i, t].item(), x["old_values"][i, t].item()
            unclipped = (v - g) ** 2
            if clip_values:
                v_clipped = v if abs(v.item() - v_old) <= clip_v else v_old + math.copysign(clip_v, v.item() - v_old)
                vf = 0.5 * max(unclipped, (v_clipped - g) ** 2, key=_number)
            else:
                vf = 0.5 * unclipped
            total = total + pg + vf_coef * vf - ent_coef * x["entropy"][i, t]
            count += 1
    return total / count


@pytest.mark.parametrize(("seed", "batch", "seq"), [(0, 3, 5), (1, 4, 7), (2, 2, 3)])
@pytest.mark.parametrize("kwargs", [{}, {"epsilon_low": 0.1, "epsilon_high": 0.3, "cliprange_value": 0.1,
                                        "vf_coef": 0.5, "entropy_coef": 0.01}])
@pytest.mark.parametrize("clip_values", [True, False])
def test_ppo_matches_reference(seed, batch, seq, kwargs, clip_values):
    x = make_ppo_batch(seed, batch, seq)
    if not clip_values:
        x_in = {k: v for k, v in x.items() if k != "old_values"}
    else:
        x_in = dict(x)
    leaves = {k: x[k].clone().requires_grad_(True) for k in ("per_token_logps", "values", "entropy")}
    loss = PPOLoss(**kwargs)
    value = loss({**x_in, **leaves})
    value.backward()
    ref_leaves = {k: x[k].clone().requires_grad_(True) for k in leaves}
    names = {"epsilon_low": "eps_low", "epsilon_high": "eps_high", "cliprange_value": "clip_v",
             "vf_coef": "vf_coef", "entropy_coef": "ent_coef"}
    expected = reference_ppo({**x, **ref_leaves}, clip_values=clip_values,
                             **{names[k]: v for k, v in kwargs.items()})
    expected.backward()
    assert_close(value.detach(), expected.detach())
    for key in leaves:
        if key == "entropy" and not kwargs:
            assert leaves[key].grad is None or torch.all(leaves[key].grad == 0)
            continue
        assert_close(leaves[key].grad, ref_leaves[key].grad)
    if batch * seq >= 15:  # enough tokens that both branches of each clip occur
        assert 0 < loss.metrics["clip_fraction"] < 1
        if clip_values:
            assert 0 < loss.metrics["value_clip_fraction"] < 1


def test_ppo_entropy_coef_needs_entropy():
    x = make_ppo_batch(0, 2, 3)
    del x["entropy"]
    with pytest.raises(LossInputError, match=r"ppo: entropy_coef=0.01 > 0 needs model_outputs\['entropy'\].*got none"):
        PPOLoss(entropy_coef=0.01)(x)


def test_ppo_micro_batch_split_is_exact():
    x = make_ppo_batch(4, 5, 6)
    loss = PPOLoss(entropy_coef=0.02)
    count = loss.count_units(x)
    assert int(count) == int(x["completion_mask"].sum())
    full = loss(x)
    parts = sum(loss({k: v[s] for k, v in x.items()}, num_items_in_batch=count) for s in (slice(0, 2), slice(2, 5)))
    assert_close(parts, full)


@pytest.mark.parametrize(("kwargs", "key", "expected"), [
    ({"epsilon_low": 1.0}, "epsilon_low", "in (0.0, 1.0)"),
    ({"cliprange_value": 0.0}, "cliprange_value", "> 0"),
    ({"vf_coef": -1.0}, "vf_coef", ">= 0"),
    ({"entropy_coef": -0.1}, "entropy_coef", ">= 0"),
])
def test_ppo_bad_hyperparameters(kwargs, key, expected):
    with pytest.raises(ConfigError) as info:
        PPOLoss(**kwargs)
    assert info.value.key == key and info.value.expected == expected and info.value.found == kwargs[key]
    assert expected.replace("a number ", "") in str(info.value) and str(kwargs[key]) in str(info.value)


# ---------------------------------------------------------------- KL penalty
def reference_kl(lp, ref, mask, estimator):
    total, count = 0.0, 0
    for i in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            if mask[i, t]:
                log_r = ref[i, t] - lp[i, t]  # log(pi_ref / pi_theta)
                if estimator == "k1":
                    k = -log_r
                elif estimator == "k2":
                    k = 0.5 * log_r * log_r
                else:
                    k = torch.exp(log_r) - 1 - log_r
                total, count = total + k, count + 1
    return total / count


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
@pytest.mark.parametrize(("seed", "batch", "seq"), [(0, 3, 5), (1, 2, 8)])
def test_kl_penalty_matches_reference(estimator, seed, batch, seq):
    x = make_ppo_batch(seed, batch, seq)
    lp, ref, mask = x["per_token_logps"], x["old_per_token_logps"], x["completion_mask"]
    leaf = lp.clone().requires_grad_(True)
    value = KLPenaltyLoss(estimator=estimator)({"per_token_logps": leaf, "ref_per_token_logps": ref,
                                                "completion_mask": mask})
    value.backward()
    ref_leaf = lp.clone().requires_grad_(True)
    expected = reference_kl(ref_leaf, ref, mask, estimator)
    expected.backward()
    assert_close(value.detach(), expected.detach())
    assert_close(leaf.grad, ref_leaf.grad)


def test_kl_estimators_agree_with_the_exact_kl_in_expectation():
    # Tokens sampled from pi_theta: the mean of k1 and k3 estimates KL(pi_theta || pi_ref), k3 is never negative.
    g = torch.Generator().manual_seed(0)
    policy = torch.log_softmax(torch.randn(6, dtype=F64, generator=g), -1)
    reference = torch.log_softmax(torch.randn(6, dtype=F64, generator=g), -1)
    exact = (policy.exp() * (policy - reference)).sum()
    tokens = torch.multinomial(policy.exp(), 200_000, replacement=True, generator=g)
    inputs = {"per_token_logps": policy[tokens][None], "ref_per_token_logps": reference[tokens][None],
              "completion_mask": torch.ones(1, tokens.numel())}
    k1 = KLPenaltyLoss(estimator="k1")(inputs)
    k3 = KLPenaltyLoss(estimator="k3")(inputs)
    assert abs(k1 - exact) < 0.02 and abs(k3 - exact) < 0.02
    assert KLPenaltyLoss(estimator="k3").per_unit_loss(inputs).losses.min() >= 0


def test_kl_penalty_rejects_unknown_estimator():
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("kl_penalty", estimator="k4")
    assert "'k1', 'k2', 'k3', 'abs', 'k1+', 'k3+'" in str(info.value) and "'k4'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        KLPenaltyLoss(estimator="k4")
    assert str(info.value) == "kl_penalty: estimator must be one of 'k1', 'k2', 'k3', 'abs', 'k1+', 'k3+', got 'k4'"
