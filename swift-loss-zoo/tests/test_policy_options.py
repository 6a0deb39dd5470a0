"""The options every policy loss shares, and the new losses, against the float64 reference of policy_reference.py.

Aggregation modes (with micro-batch splits and ``num_items_in_batch``), KL estimators and the bias
correction, rollout importance sampling, the off-policy sequence mask, the entropy bonus and the
top-entropy mask, dual and two-sided clipping; luspo, gmpo, vespo, gpg (clip_cov and kl_cov selections
in test_policy_covariance.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from policy_reference import F64, make_batch, quantile, reference_run, run

import swift_zoo
from swift_loss_zoo.policy import (
    BNPOLoss,
    DAPOLoss,
    GMPOLoss,
    GPGLoss,
    GRPOLoss,
    GSPOLoss,
    KLPenaltyLoss,
    LUSPOLoss,
    SAPOLoss,
    VESPOLoss,
)
from swift_loss_zoo.policy._entropy import high_entropy_mask
from swift_loss_zoo.policy._estimators import kl_estimate
from swift_zoo import LossInputError


def assert_close(actual, expected, *, rtol=1e-10, atol=1e-12):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), (
        f"max |diff| {(actual - expected).abs().max().item():.3e}\nactual {actual}\nexpected {expected}")


def compare(name, kwargs, kind, ref_kwargs, batch, differentiable=("per_token_logps",)):
    value, grads = run(swift_zoo.build_loss(name, **kwargs), batch, differentiable=differentiable)
    expected, expected_grads = reference_run(kind, batch, differentiable=differentiable, **ref_kwargs)
    assert_close(value, expected)
    for key in differentiable:
        assert_close(grads[key], expected_grads[key])
    assert grads["per_token_logps"].abs().sum() > 0
    return value


MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]

CASES = [
    # (zoo name, zoo kwargs, reference kind, reference kwargs)
    ("grpo", {"dual_clip": 3.0}, "grpo", {"dual_clip": 3.0}),
    ("grpo", {"dual_clip": 1.1, "epsilon_high": 0.3}, "grpo", {"dual_clip": 1.1, "eps_high": 0.3}),
    ("bnpo", {"delta": 1.2}, "bnpo", {"delta": 1.2, "mode": "token-mean"}),
    ("grpo", {"beta": 0.1, "kl_estimator": "k1"}, "grpo", {"beta": 0.1, "kl_estimator": "k1"}),
    ("grpo", {"beta": 0.1, "kl_estimator": "abs"}, "grpo", {"beta": 0.1, "kl_estimator": "abs"}),
    ("dapo", {"beta": 0.1, "kl_estimator": "k3+"}, "dapo", {"beta": 0.1, "kl_estimator": "k3+", "eps_high": 0.28,
                                                           "mode": "token-mean"}),
    ("dapo", {"beta": 0.1, "kl_estimator": "k1+"}, "dapo", {"beta": 0.1, "kl_estimator": "k1+", "eps_high": 0.28,
                                                           "mode": "token-mean"}),
    ("grpo", {"beta": 0.2, "use_bias_correction_kl": True}, "grpo", {"beta": 0.2, "bias_correction": True}),
    ("gspo", {"beta": 0.2, "use_bias_correction_kl": True, "epsilon_low": 0.05, "epsilon_high": 0.1}, "gspo",
     {"beta": 0.2, "bias_correction": True, "eps_low": 0.05, "eps_high": 0.1}),
    ("grpo", {"rollout_correction": "token_truncate"}, "grpo", {"rollout_mode": "token_truncate"}),
    ("grpo", {"rollout_correction": "token_truncate", "rollout_correction_min": 0.8,
              "rollout_correction_max": 1.1}, "grpo",
     {"rollout_mode": "token_truncate", "rollout_min": 0.8, "rollout_max": 1.1}),
    ("dapo", {"rollout_correction": "token_mask", "rollout_correction_min": 0.8, "rollout_correction_max": 1.25},
     "dapo", {"rollout_mode": "token_mask", "rollout_min": 0.8, "rollout_max": 1.25, "eps_high": 0.28,
              "mode": "token-mean"}),
    ("grpo", {"rollout_correction": "sequence_truncate", "rollout_correction_max": 1.5}, "grpo",
     {"rollout_mode": "sequence_truncate", "rollout_max": 1.5}),
    ("bnpo", {"rollout_correction": "sequence_mask", "rollout_correction_min": 0.5, "rollout_correction_max": 2.0,
              "beta": 0.05}, "bnpo",
     {"rollout_mode": "sequence_mask", "rollout_min": 0.5, "rollout_max": 2.0, "beta": 0.05, "mode": "token-mean"}),
    ("grpo", {"off_policy_mask_threshold": 0.05}, "grpo", {"off_policy": 0.05}),
    ("grpo", {"entropy_coef": 0.1, "beta": 0.05}, "grpo", {"entropy_coef": 0.1, "beta": 0.05}),
    ("dapo", {"top_entropy_quantile": 0.4}, "dapo", {"top_entropy": 0.4, "eps_high": 0.28, "mode": "token-mean"}),
    ("grpo", {"top_entropy_quantile": 0.5, "entropy_coef": 0.05, "off_policy_mask_threshold": 0.0,
              "rollout_correction": "token_truncate", "beta": 0.1, "use_bias_correction_kl": True}, "grpo",
     {"top_entropy": 0.5, "entropy_coef": 0.05, "off_policy": 0.0, "rollout_mode": "token_truncate", "beta": 0.1,
      "bias_correction": True}),
    ("sapo", {"rollout_correction": "token_truncate", "entropy_coef": 0.02}, "sapo",
     {"rollout_mode": "token_truncate", "entropy_coef": 0.02}),
    ("cispo", {"top_entropy_quantile": 0.3, "beta": 0.1}, "cispo",
     {"top_entropy": 0.3, "beta": 0.1, "eps_low": None, "eps_high": 4.0, "mode": "token-mean"}),
    ("gspo", {"importance_sampling_level": "sequence_token", "epsilon_low": 0.05, "epsilon_high": 0.1,
              "rollout_correction": "token_truncate", "top_entropy_quantile": 0.5}, "gspo",
     {"gspo_level": "sequence_token", "eps_low": 0.05, "eps_high": 0.1, "rollout_mode": "token_truncate",
      "top_entropy": 0.5}),
    ("gspo", {"epsilon_low": 0.05, "epsilon_high": 0.1, "rollout_correction": "token_truncate",
              "top_entropy_quantile": 0.5}, "gspo",
     {"eps_low": 0.05, "eps_high": 0.1, "rollout_mode": "token_truncate", "top_entropy": 0.5}),
    ("luspo", {}, "luspo", {"eps_low": 3e-4, "eps_high": 4e-4, "mode": "seq-mean-token-sum"}),
    ("luspo", {"epsilon_low": 0.05, "epsilon_high": 0.1, "beta": 0.05}, "luspo",
     {"eps_low": 0.05, "eps_high": 0.1, "beta": 0.05, "mode": "seq-mean-token-sum"}),
    ("gpg", {}, "gpg", {"mode": "token-mean"}),
    ("gpg", {"loss_agg_mode": "seq-mean-token-sum", "beta": 0.1, "entropy_coef": 0.01}, "gpg",
     {"mode": "seq-mean-token-sum", "beta": 0.1, "entropy_coef": 0.01}),
    ("vespo", {}, "vespo", {"mode": "token-mean"}),
    ("vespo", {"k_pos": 1.0, "lambda_pos": 0.5, "k_neg": 2.5, "lambda_neg": 4.0, "beta": 0.05}, "vespo",
     {"vespo": (1.0, 0.5, 2.5, 4.0), "beta": 0.05, "mode": "token-mean"}),
    ("vespo", {"rollout_correction": "token_mask", "rollout_correction_min": 0.7, "rollout_correction_max": 1.3},
     "vespo", {"rollout_mode": "token_mask", "rollout_min": 0.7, "rollout_max": 1.3, "mode": "token-mean"}),
    ("gmpo", {}, "gmpo", {"eps_low": 0.4, "eps_high": 0.4}),
    ("gmpo", {"epsilon_low": 0.1, "epsilon_high": 0.15, "beta": 0.05, "entropy_coef": 0.02}, "gmpo",
     {"eps_low": 0.1, "eps_high": 0.15, "beta": 0.05, "entropy_coef": 0.02}),
    ("gmpo", {"epsilon_low": 0.1, "epsilon_high": 0.1, "rollout_correction": "token_truncate",
              "off_policy_mask_threshold": 0.0, "top_entropy_quantile": 0.6}, "gmpo",
     {"eps_low": 0.1, "eps_high": 0.1, "rollout_mode": "token_truncate", "off_policy": 0.0, "top_entropy": 0.6}),
]


@pytest.mark.parametrize(("name", "kwargs", "kind", "ref_kwargs"), CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1]) or 'defaults'}" for c in CASES])
@pytest.mark.parametrize(("seed", "token_advantages"), [(0, False), (1, True), (2, False)])
def test_options_and_new_losses_match_reference(name, kwargs, kind, ref_kwargs, seed, token_advantages):
    batch = make_batch(seed, 5, 6, token_advantages=token_advantages)
    differentiable = ("per_token_logps", "entropy") if kwargs.get("entropy_coef") else ("per_token_logps",)
    compare(name, kwargs, kind, ref_kwargs, batch, differentiable)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["grpo", "dapo", "sapo", "gspo", "cispo", "gpg"])
def test_every_aggregation_mode_matches_reference(name, mode):
    batch = make_batch(3, 5, 7, token_advantages=True)
    defaults = {"dapo": {"eps_high": 0.28}, "gspo": {"eps_low": 3e-4, "eps_high": 4e-4},
                "cispo": {"eps_low": None, "eps_high": 4.0}}.get(name, {})
    kwargs = {"loss_agg_mode": mode, "beta": 0.05}
    ref = {"mode": mode, "beta": 0.05, **defaults}
    if mode == "seq-mean-token-sum-norm":
        kwargs["loss_scale_factor"], ref["scale"] = 11, 11
    compare(name, kwargs, name, ref, batch)


def test_sum_norm_without_a_factor_divides_by_the_padded_length():
    batch = make_batch(4, 4, 6)
    loss = GRPOLoss(loss_agg_mode="seq-mean-token-sum-norm")
    wide = {k: torch.cat([v, torch.zeros_like(v[:, :3])], -1) if v.dim() == 2 else v for k, v in batch.items()}
    assert_close(run(loss, wide)[0] * 9, run(loss, batch)[0] * 6)
    fixed = GRPOLoss(loss_agg_mode="seq-mean-token-sum-norm", loss_scale_factor=12)
    assert_close(run(fixed, wide)[0], run(fixed, batch)[0])


# ---------------------------------------------------- micro-batches and num_items_in_batch
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("token_advantages", [False, True])
def test_num_items_in_batch_counts_the_mode_units_and_splits_exactly(mode, token_advantages):
    batch = make_batch(5, 7, 6, empty_row=True, token_advantages=token_advantages)
    loss = DAPOLoss(loss_agg_mode=mode, beta=0.05, entropy_coef=0.01, rollout_correction="token_truncate",
                    off_policy_mask_threshold=0.1, loss_scale_factor=8)
    mask = batch["completion_mask"]
    expected_units = int(mask.sum()) if mode == "token-mean" else int((mask.sum(-1) > 0).sum())
    assert loss.reduction_unit == ("token" if mode == "token-mean" else "sequence")
    assert int(loss.count_units(batch)) == expected_units
    full_value, full_grads = run(loss, batch, differentiable=("per_token_logps", "entropy"))
    parts = [slice(0, 2), slice(2, 3), slice(3, 7)]
    counts = [int(loss.count_units({k: v[p] for k, v in batch.items()})) for p in parts]
    assert sum(counts) == expected_units
    value, grads = torch.zeros((), dtype=F64), {"per_token_logps": [], "entropy": []}
    for p in parts:
        v, g = run(loss, {k: x[p] for k, x in batch.items()}, num_items=expected_units,
                   differentiable=("per_token_logps", "entropy"))
        value = value + v
        for key in grads:
            grads[key].append(g[key])
    assert_close(value, full_value, rtol=1e-12, atol=1e-14)
    for key in grads:
        assert_close(torch.cat(grads[key]), full_grads[key], rtol=1e-12, atol=1e-14)


def test_num_items_in_batch_equals_verl_global_normalisers():
    # token-mean: verl divides by the global token count; seq-mean-*: by the global sequence count.
    batch = make_batch(6, 6, 5, empty_row=True)
    mask = batch["completion_mask"].bool()
    loss = BNPOLoss(loss_agg_mode="seq-mean-token-sum")
    per_token = loss.weighted_policy_losses(*_batch_and_weights(loss, batch))
    by_hand = (per_token * mask).sum(-1)[mask.any(-1)].sum() / 40
    assert_close(loss(batch, num_items_in_batch=40), by_hand)


def _batch_and_weights(loss, batch):
    from swift_loss_zoo.policy._group_policy import prepare_policy_batch

    prepared = prepare_policy_batch(loss, loss.validate(batch))
    return prepared, loss.policy_weights(prepared)


# ------------------------------------------------------------------ KL estimators
@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "abs", "k1+", "k3+"])
def test_kl_penalty_estimators_values_and_gradients(estimator):
    batch = make_batch(7, 3, 5)
    leaf = batch["per_token_logps"].clone().requires_grad_(True)
    inputs = {"per_token_logps": leaf, "ref_per_token_logps": batch["ref_per_token_logps"],
              "completion_mask": batch["completion_mask"]}
    value = KLPenaltyLoss(estimator=estimator)(inputs)
    value.backward()
    mask = batch["completion_mask"].bool()
    x = (batch["ref_per_token_logps"] - batch["per_token_logps"])[mask]
    expected = {"k1": -x, "k2": 0.5 * x**2, "k3": torch.expm1(x) - x, "abs": x.abs(),
                "k1+": -x, "k3+": torch.expm1(x) - x}[estimator].mean()
    # gradient w.r.t. log pi_theta (x = ref - lp): k1: 1, k2 and the straight-through ones: -x, k3: 1 - e^x, abs: -sign x
    slope = {"k1": torch.ones_like(x), "k2": -x, "k3": 1 - torch.exp(x), "abs": -torch.sign(x),
             "k1+": -x, "k3+": -x}[estimator]
    expected_grad = torch.zeros_like(leaf)
    expected_grad[mask] = slope / mask.sum()
    assert_close(value.detach(), expected)
    assert_close(leaf.grad, expected_grad)


def test_straight_through_estimators_keep_their_value_and_take_k2_gradient():
    x = torch.linspace(-2, 2, 9, dtype=F64, requires_grad=True)
    for name in ("k1", "k3"):
        plus = kl_estimate(x, name + "+")
        assert torch.equal(plus.detach(), kl_estimate(x.detach(), name))
        (grad,) = torch.autograd.grad(plus.sum(), x)
        assert_close(grad, x.detach())


@pytest.mark.parametrize("mode", MODES[1:])
def test_kl_penalty_aggregation_modes(mode):
    batch = make_batch(8, 4, 5, empty_row=True)
    mask = batch["completion_mask"].bool()
    inputs = {k: batch[k] for k in ("per_token_logps", "ref_per_token_logps", "completion_mask")}
    loss = KLPenaltyLoss(loss_agg_mode=mode, loss_scale_factor=9 if mode.endswith("norm") else None)
    x = batch["ref_per_token_logps"] - batch["per_token_logps"]
    k3 = torch.where(mask, torch.expm1(x) - x, torch.zeros((), dtype=F64))
    sums, counts = k3.sum(-1), mask.sum(-1)
    rows = counts > 0
    per_row = {"seq-mean-token-mean": sums / counts.clamp(min=1), "seq-mean-token-sum": sums,
               "seq-mean-token-sum-norm": sums / 9}[mode]
    assert loss.reduction_unit == "sequence" and int(loss.count_units(inputs)) == int(rows.sum())
    assert_close(loss(inputs), per_row[rows].mean())


# --------------------------------------------------------------- rollout correction
def test_rollout_weights_multiply_the_policy_term_only():
    # beta > 0: the KL term is not weighted; weights are detached (no gradient through the rollout log-probs).
    batch = make_batch(9, 4, 5)
    plain = GRPOLoss(beta=0.3)
    corrected = GRPOLoss(beta=0.3, rollout_correction="token_truncate", rollout_correction_max=100.0)
    no_policy = {**batch, "advantages": torch.zeros_like(batch["advantages"])}
    assert_close(corrected(no_policy), plain(no_policy))
    assert corrected.metrics["rollout_weight_mean"] > 0
    value, grads = run(corrected, batch, differentiable=("per_token_logps", "rollout_per_token_logps"))
    assert grads["rollout_per_token_logps"] is None


def test_rollout_mask_zeroes_out_of_range_tokens_and_reports_them():
    batch = make_batch(10, 4, 6)
    loss = DAPOLoss(rollout_correction="token_mask", rollout_correction_min=0.9, rollout_correction_max=1.1)
    loss(batch)
    mask = batch["completion_mask"].bool()
    w = torch.exp(batch["old_per_token_logps"] - batch["rollout_per_token_logps"])[mask]
    outside = ((w < 0.9) | (w > 1.1)).double().mean()
    assert 0 < outside < 1
    assert_close(loss.metrics["rollout_corrected_fraction"].double(), outside, rtol=1e-6)


def test_rollout_correction_needs_rollout_logps():
    batch = make_batch(0, 2, 3)
    del batch["rollout_per_token_logps"]
    with pytest.raises(LossInputError) as info:
        GRPOLoss(rollout_correction="token_truncate")(batch)
    assert str(info.value) == (
        "grpo: rollout_correction='token_truncate' needs model_outputs['rollout_per_token_logps'] (a float tensor "
        "[B, T]); got none. Pass it, or set rollout_correction=None.")


# ---------------------------------------------------------------- off-policy sequence mask
def test_off_policy_mask_drops_only_negative_far_sequences():
    lp = torch.tensor([[-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0]], dtype=F64)
    sampler = lp + torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.01, 0.01]], dtype=F64)  # KL 0.5, 0.5, 0.01
    batch = {"per_token_logps": lp, "old_per_token_logps": sampler, "advantages": torch.tensor([1.0, -1.0, -1.0],
             dtype=F64), "completion_mask": torch.ones(2, 2).repeat(3, 1)[:3]}
    loss = BNPOLoss(off_policy_mask_threshold=0.1, epsilon_low=0.9, epsilon_high=10.0)  # no PPO clipping here
    grad = run(loss, batch)[1]["per_token_logps"]
    assert torch.all(grad[1] == 0) and torch.all(grad[0] != 0) and torch.all(grad[2] != 0)
    assert loss.metrics["off_policy_masked_fraction"].item() == pytest.approx(1 / 3)
    # rollout log-probs take precedence over old ones as the sampler (TRL)
    with_rollout = {**batch, "rollout_per_token_logps": lp.clone()}
    assert torch.all(run(loss, with_rollout)[1]["per_token_logps"][1] != 0)


# ------------------------------------------------------------------ entropy
def test_high_entropy_mask_is_the_top_quantile():
    batch = make_batch(11, 5, 7)
    mask = batch["completion_mask"].bool()
    values = batch["entropy"][mask].tolist()
    for rho in (0.0, 0.2, 0.37, 0.5, 1.0):
        kept = high_entropy_mask(batch["entropy"], mask, rho)
        threshold = quantile(values, 1 - rho)
        count = sum(v >= threshold for v in values)
        assert abs(int(kept.sum()) - count) <= 1  # ties at an exact quantile position: float32 level rounding
        assert torch.all(batch["entropy"][kept] >= batch["entropy"][mask & ~kept].max()) if (mask & ~kept).any() else True
    assert int(high_entropy_mask(batch["entropy"], mask, 0.0).sum()) == 1
    assert torch.equal(high_entropy_mask(batch["entropy"], mask, 1.0), mask)


def test_top_entropy_quantile_declares_batch_dependence():
    assert GRPOLoss().batch_dependent is None
    assert "quantile" in GRPOLoss(top_entropy_quantile=0.2).batch_dependent


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"entropy_coef": 0.01}, "entropy_coef=0.01 > 0"),
    ({"top_entropy_quantile": 0.2}, "top_entropy_quantile=0.2 < 1"),
])
def test_entropy_options_need_the_entropy(kwargs, message):
    batch = make_batch(0, 2, 3)
    del batch["entropy"]
    with pytest.raises(LossInputError, match=rf"grpo: {message} needs model_outputs\['entropy'\]"):
        GRPOLoss(**kwargs)(batch)


# ------------------------------------------------------------------ clipping
@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.3, 1.9, 2.5, 4.0])
@pytest.mark.parametrize("advantage", [-1.5, 0.7])
def test_delta_and_dual_clip_agree_at_the_same_cap(ratio, advantage):
    lp = torch.tensor([[-1.0]], dtype=F64)
    batch = {"per_token_logps": lp, "old_per_token_logps": lp - math.log(ratio),
             "advantages": torch.tensor([advantage], dtype=F64), "completion_mask": torch.ones(1, 1)}
    delta = run(BNPOLoss(delta=2.0), batch)
    dual = run(BNPOLoss(dual_clip=2.0), batch)
    assert_close(delta[0], dual[0])
    assert_close(delta[1]["per_token_logps"], dual[1]["per_token_logps"])


def test_delta_is_allowed_at_one_plus_epsilon_high():
    assert DAPOLoss(delta=1.28).delta == 1.28


def test_dual_clip_caps_negative_advantages_only():
    lp = torch.tensor([[-1.0, -1.0]], dtype=F64)
    batch = {"per_token_logps": lp, "old_per_token_logps": lp - math.log(5.0),
             "advantages": torch.tensor([[-1.0, 1.0]], dtype=F64), "completion_mask": torch.ones(1, 2)}
    loss = BNPOLoss(dual_clip=3.0)
    value, grads = run(loss, batch)
    # token 0: A < 0, ratio 5 > c = 3: loss -A c = 3, no gradient; token 1: A > 0, ratio clipped at 1.2: -1.2
    assert_close(value, torch.tensor((3.0 - 1.2) / 2, dtype=F64))
    assert torch.all(grads["per_token_logps"] == 0)
    assert loss.metrics["dual_clip_fraction"].item() == 0.5


# ------------------------------------------------------------------ advantages shapes
def test_constant_token_advantages_equal_sequence_advantages():
    batch = make_batch(12, 4, 6)
    token = {**batch, "advantages": batch["advantages"][:, None].expand(4, 6).clone()}
    for loss in (GRPOLoss(beta=0.05), GSPOLoss(), LUSPOLoss(), SAPOLoss(), VESPOLoss(), GMPOLoss(), GPGLoss()):
        a, ga = run(loss, batch)
        b, gb = run(loss, token)
        assert_close(a, b, rtol=1e-12, atol=1e-14)
        assert_close(ga["per_token_logps"], gb["per_token_logps"], rtol=1e-12, atol=1e-14)


def test_advantages_of_another_rank_are_refused():
    batch = make_batch(0, 2, 3)
    with pytest.raises(LossInputError) as info:
        GRPOLoss()({**batch, "advantages": torch.zeros(2, 3, 1, dtype=F64)})
    assert str(info.value) == ("grpo: model_outputs['advantages'] expected shape [B] (one per completion) or [B, T] "
                               "(one per token), got (2, 3, 1) (3 dims)")
    with pytest.raises(LossInputError, match=r"advantages'\] expected shape \[B, T\] with T=3"):
        GRPOLoss()({**batch, "advantages": torch.zeros(2, 4, dtype=F64)})


# ------------------------------------------------------------------ signatures
def test_every_policy_loss_lists_the_shared_options_in_its_signature():
    import inspect

    shared = ("beta", "kl_estimator", "use_bias_correction_kl", "rollout_correction", "rollout_correction_min",
              "rollout_correction_max", "off_policy_mask_threshold", "entropy_coef", "top_entropy_quantile")
    for name in ("grpo", "bnpo", "dapo", "dr_grpo", "cispo", "sapo", "gspo", "luspo", "gmpo", "vespo", "gpg",
                 "clip_cov", "kl_cov", "ppo"):
        cls = swift_zoo.get_loss(name)
        params = inspect.signature(cls.__init__).parameters
        assert all(key in params for key in shared), name
        assert all(p.kind is p.KEYWORD_ONLY for k, p in params.items() if k != "self"), name
        assert ("loss_agg_mode" in params) == (name != "dr_grpo"), name
        loss = swift_zoo.build_loss(cls, **{**cls.example_kwargs(), "entropy_coef": "0.5",
                                            "top_entropy_quantile": "0.25"})
        assert loss.entropy_coef == 0.5 and loss.top_entropy_quantile == 0.25
        assert set(loss.hyperparameters()) == set(params) - {"self"}


# ------------------------------------------------------------------ conformance with the options on
@pytest.mark.parametrize("loss", [
    GRPOLoss(beta=0.04, kl_estimator="k3+", use_bias_correction_kl=True, rollout_correction="token_truncate",
             off_policy_mask_threshold=0.05, entropy_coef=0.01, dual_clip=3.0),
    DAPOLoss(loss_agg_mode="seq-mean-token-sum-norm", loss_scale_factor=8, rollout_correction="sequence_mask",
             rollout_correction_min=0.5, entropy_coef=0.01, top_entropy_quantile=0.5),
    LUSPOLoss(epsilon_low=0.05, epsilon_high=0.05, beta=0.04, use_bias_correction_kl=True, entropy_coef=0.01),
    GMPOLoss(beta=0.04, rollout_correction="token_mask", rollout_correction_min=0.5, entropy_coef=0.01,
             top_entropy_quantile=0.6),
], ids=["grpo-all-options", "dapo-sum-norm-masks", "luspo-bias-corrected", "gmpo-masks"])
def test_conformance_suite_passes_with_options(loss):
    from swift_zoo.testing import check_loss

    report = check_loss(loss, on_fail="raise")
    assert report.ok


def test_gspo_levels_agree_for_uniform_weights_and_differ_for_token_ones():
    batch = make_batch(13, 5, 6)
    sequence, token = (GSPOLoss(epsilon_low=0.05, epsilon_high=0.05, importance_sampling_level=level, beta=0.05)
                       for level in ("sequence", "sequence_token"))
    a, b = run(sequence, batch), run(token, batch)
    assert_close(a[0], b[0])
    assert_close(a[1]["per_token_logps"], b[1]["per_token_logps"])
    uneven = {**batch, "advantages": make_batch(14, 5, 6, token_advantages=True)["advantages"]}
    assert not torch.allclose(run(sequence, uneven)[1]["per_token_logps"], run(token, uneven)[1]["per_token_logps"])
