"""Every policy loss (and kl_penalty) that declares itself equal to verl 0.9.1 against ``verl.trainer.ppo.core_algos``.

verl's actor loss (``verl.workers.utils.losses.ppo_loss``) is ``policy_loss_fn(...) - entropy_coeff * agg_loss(entropy)
+ kl_loss_coef * agg_loss(kl_penalty(...))`` with one ``loss_agg_mode`` and the global batch info; the comparison
composes exactly those ``core_algos`` functions (``get_policy_loss_fn``, ``agg_loss``, ``kl_penalty``, and
``rollout_corr_helper.compute_rollout_correction_weights`` for the rollout weights) with a real ``ActorConfig``.
Values and gradients (log-probs, entropies, values) are compared in float64.
"""

from __future__ import annotations

import re

import pytest
import torch
from _policy_references import SEEDS, assert_close, policy_batch, policy_records, record_id, zoo_value_and_grad

import swift_zoo

pytest.importorskip("verl", reason="verl is not installed (the references nox session installs verl==0.9.1 --no-deps)")
core_algos = pytest.importorskip("verl.trainer.ppo.core_algos", reason="verl's core_algos needs ray, tensordict, "
                                 "omegaconf and codetiming (tests_references/requirements.txt)")
from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_weights  # noqa: E402
from verl.workers.config.actor import ActorConfig, PolicyLossConfig  # noqa: E402

RECORDS = [item for item in policy_records("verl") if item[0] != "kl_penalty"]
KL_RECORDS = [item for item in policy_records("verl") if item[0] == "kl_penalty"]
VERL_KL = {"k1": "kl", "k2": "mse", "k3": "low_var_kl", "abs": "abs", "k1+": "k1+", "k3+": "k3+"}
MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
FREE_MODE = {"grpo", "bnpo", "dapo", "cispo", "gspo", "gpg", "kl_cov", "ppo"}  # verl honours loss_agg_mode there
SCENARIOS = {
    "defaults": {},
    "kl_k3": {"beta": 0.1},
    "kl_k1": {"beta": 0.1, "kl_estimator": "k1"},
    "kl_k3+": {"beta": 0.1, "kl_estimator": "k3+"},
    "entropy": {"entropy_coef": 0.05},
    "rollout_token_truncate": {"rollout_correction": "token_truncate", "rollout_correction_max": 1.2},
    "rollout_token_icepop": {"rollout_correction": "token_mask", "rollout_correction_min": 0.8,
                             "rollout_correction_max": 1.2},
    "rollout_sequence_truncate": {"rollout_correction": "sequence_truncate", "rollout_correction_max": 1.5},
    "rollout_sequence_icepop": {"rollout_correction": "sequence_mask", "rollout_correction_min": 0.5,
                                "rollout_correction_max": 1.5},
    **{f"agg_{mode}": {"loss_agg_mode": mode, "loss_scale_factor": 9 if mode.endswith("norm") else None}
       for mode in MODES},
}
CASES = [(item, scenario, token) for item in RECORDS for scenario in SCENARIOS for token in (False, True)
         if not scenario.startswith("agg_") or item[0] in FREE_MODE]


def spelled(record) -> tuple[str, str]:
    """``(loss_mode, loss_agg_mode)`` from ``actor.policy_loss.loss_mode='vanilla', actor.loss_agg_mode='...'``."""
    mode = re.search(r"loss_mode='([\w-]+)'", record.name).group(1)
    agg = re.search(r"loss_agg_mode='([\w-]+)'", record.name).group(1)
    return mode, agg


def actor_config(loss, loss_mode: str, loss_agg_mode: str, mask: torch.Tensor) -> ActorConfig:
    """verl's ActorConfig with the values the record's settings name, read off the zoo loss."""
    names = {"clip_cov_ratio": "clip_cov_ratio", "clip_cov_lb": "clip_cov_lb", "clip_cov_ub": "clip_cov_ub",
             "kl_cov_ratio": "kl_cov_ratio", "ppo_kl_coef": "kl_cov_coef"}
    policy = PolicyLossConfig(loss_mode=loss_mode, **{key: getattr(loss, attribute)
                                                      for key, attribute in names.items() if hasattr(loss, attribute)})
    low, high = getattr(loss, "epsilon_low", 0.2), getattr(loss, "epsilon_high", 0.2)
    config = ActorConfig(strategy="fsdp", rollout_n=1, ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1,
                         clip_ratio=low if low is not None else 0.2, clip_ratio_low=low, clip_ratio_high=high,
                         clip_ratio_c=getattr(loss, "dual_clip", None) or 3.0, policy_loss=policy,
                         loss_agg_mode=loss_agg_mode, entropy_coeff=loss.entropy_coef,
                         tau_pos=getattr(loss, "temperature_pos", 1.0), tau_neg=getattr(loss, "temperature_neg", 1.05))
    config.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()),
                                    global_batch_size=int(mask.any(-1).sum()), loss_scale_factor=loss.loss_scale_factor)
    return config


def verl_rollout_weights(loss, batch) -> torch.Tensor | None:
    if loss.rollout_correction is None:
        return None
    level = loss.rollout_correction.split("_")[0]
    if loss.rollout_correction.endswith("mask"):
        threshold = f"{loss.rollout_correction_min}_{loss.rollout_correction_max}"  # IcePop
    else:
        threshold = loss.rollout_correction_max  # TIS
    weights, _ = compute_rollout_correction_weights(
        log_ratio=batch["old_per_token_logps"] - batch["rollout_per_token_logps"],
        response_mask=batch["completion_mask"].double(), rollout_is=level, rollout_is_threshold=threshold)
    return weights


def ppo_inputs(batch: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + seed)
    shape = batch["per_token_logps"].shape
    returns = torch.randn(shape, generator=g, dtype=torch.float64)
    old_values = returns + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    return {**batch, "returns": returns, "old_values": old_values,
            "values": old_values + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)}


@pytest.mark.parametrize(("item", "scenario", "token_advantages"), CASES,
                         ids=[f"{record_id(i)}-{s}-{'token' if t else 'seq'}" for i, s, t in CASES])
@pytest.mark.parametrize("seed", SEEDS)
def test_verl_actor_loss(item, scenario, token_advantages, seed):
    name, record = item
    loss_mode, loss_agg_mode = spelled(record)
    kwargs = {**record.zoo_kwargs, **SCENARIOS[scenario]}
    loss_agg_mode = kwargs.get("loss_agg_mode", loss_agg_mode)
    loss = swift_zoo.build_loss(name, **kwargs)
    batch = policy_batch(seed, token_advantages=token_advantages)
    keys = ("per_token_logps", "entropy")
    if name == "ppo":
        batch, keys = ppo_inputs(batch, seed), (*keys, "values")
        if not token_advantages:
            batch["advantages"] = batch["advantages"][:, None].expand_as(batch["per_token_logps"]).clone()
    value, grads = zoo_value_and_grad(loss, batch, num_items_in_batch=loss.count_units(batch), keys=keys)

    mask = batch["completion_mask"]
    leaves = {k: batch[k].clone().requires_grad_(True) for k in keys}
    advantages = batch["advantages"]
    if advantages.dim() == 1:
        advantages = advantages[:, None] * mask
    config = actor_config(loss, loss_mode, loss_agg_mode, mask)
    policy_loss = core_algos.get_policy_loss_fn(loss_mode)
    expected, _ = policy_loss(old_log_prob=batch["old_per_token_logps"], log_prob=leaves["per_token_logps"],
                              advantages=advantages, response_mask=mask.bool(), loss_agg_mode=loss_agg_mode,
                              config=config, rollout_is_weights=verl_rollout_weights(loss, batch))
    aggregate = {"loss_mask": mask.bool(), "loss_agg_mode": loss_agg_mode, **config.global_batch_info}
    expected = expected - config.entropy_coeff * core_algos.agg_loss(loss_mat=leaves["entropy"], **aggregate)
    if loss.beta:
        kl = core_algos.kl_penalty(leaves["per_token_logps"], batch["ref_per_token_logps"], VERL_KL[loss.kl_estimator])
        expected = expected + loss.beta * core_algos.agg_loss(loss_mat=kl, **aggregate)
    if name == "ppo":
        value_loss, _ = core_algos.compute_value_loss(
            vpreds=leaves["values"], returns=batch["returns"], values=batch["old_values"], response_mask=mask.bool(),
            cliprange_value=loss.cliprange_value, loss_agg_mode=loss_agg_mode, dp_size=1,
            batch_num_tokens=aggregate["batch_num_tokens"], global_batch_size=aggregate["global_batch_size"],
            loss_scale_factor=loss.loss_scale_factor)
        expected = expected + loss.vf_coef * value_loss
    expected.backward()
    what = f"{name} vs verl {record.name} [{scenario}, {'token' if token_advantages else 'sequence'} advantages]"
    assert_close(value, expected, what)
    for key in keys:
        found = grads[key] if grads[key] is not None else torch.zeros_like(leaves[key])
        reference = leaves[key].grad if leaves[key].grad is not None else torch.zeros_like(leaves[key])
        assert_close(torch.where(mask.bool(), found, 0.0), torch.where(mask.bool(), reference, 0.0),
                     f"{what}: gradient of {key}")
    assert grads["per_token_logps"].abs().sum() > 0


@pytest.mark.parametrize("item", KL_RECORDS, ids=[record_id(i) for i in KL_RECORDS])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", SEEDS)
def test_verl_kl_penalty(item, mode, seed):
    name, record = item
    loss = swift_zoo.build_loss(name, **record.zoo_kwargs, loss_agg_mode=mode,
                                loss_scale_factor=9 if mode.endswith("norm") else None)
    batch = policy_batch(seed)
    inputs = {k: batch[k] for k in ("per_token_logps", "ref_per_token_logps", "completion_mask")}
    value, grads = zoo_value_and_grad(loss, inputs, num_items_in_batch=loss.count_units(inputs))
    leaf = batch["per_token_logps"].clone().requires_grad_(True)
    spelling = re.search(r"kl_penalty='([\w+]+)'", record.name).group(1)
    mask = batch["completion_mask"]
    kl = core_algos.kl_penalty(leaf, batch["ref_per_token_logps"], spelling)
    expected = core_algos.agg_loss(kl, mask.bool(), mode, dp_size=1, batch_num_tokens=int(mask.sum()),
                                   global_batch_size=int(mask.any(-1).sum()), loss_scale_factor=loss.loss_scale_factor)
    expected.backward()
    assert_close(value, expected, f"kl_penalty vs verl {spelling} [{mode}]")
    assert_close(grads["per_token_logps"], leaf.grad, f"kl_penalty vs verl {spelling} [{mode}] gradient")


def test_clip_cov_agrees_with_verl_when_every_candidate_is_taken():
    # The declared difference: verl picks the detached tokens at random among the candidates, the zoo the largest
    # covariances. With no more candidates than clip_num both take them all, so the losses must match.
    batch = policy_batch(3)
    mask = batch["completion_mask"]
    loss = swift_zoo.build_loss("clip_cov", clip_cov_ratio=0.5, clip_cov_lb=-0.05, clip_cov_ub=0.05)
    value, grads = zoo_value_and_grad(loss, batch, num_items_in_batch=loss.count_units(batch))
    assert 0 < loss.metrics["clip_cov_fraction"] < 0.5
    leaf = batch["per_token_logps"].clone().requires_grad_(True)
    config = actor_config(loss, "clip_cov", "token-mean", mask)
    expected, metrics = core_algos.compute_policy_loss_clip_cov(
        batch["old_per_token_logps"], leaf, batch["advantages"][:, None] * mask, mask.bool(), "token-mean", config)
    expected.backward()
    assert_close(value, expected, "clip_cov vs verl, every candidate taken")
    assert_close(grads["per_token_logps"], leaf.grad, "clip_cov vs verl gradient, every candidate taken")
