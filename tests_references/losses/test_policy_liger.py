"""Every policy loss that declares itself equal to Liger 0.8.5's ``LigerFusedLinearGRPOLoss`` against its per-token loss.

``LigerFusedLinearGRPOFunction.ppo_loss_fn`` is the loss Liger applies to each chunk of per-token log-probs after
its fused LM head; with one chunk holding the whole batch it is the whole loss. It runs on CPU (Liger's chunked
losses are torch). Values and gradients are compared in float64.
"""

from __future__ import annotations

import ast

import pytest
import torch
from _policy_references import (
    FLOAT32_TEMPERATURES,
    SEEDS,
    assert_close,
    policy_batch,
    policy_records,
    record_id,
    zoo_value_and_grad,
)

import swift_zoo
from swift_loss_zoo.policy._off_policy import rollout_weights

pytest.importorskip("liger_kernel", reason="liger-kernel is not installed (the references session installs 0.8.5)")
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction

RECORDS = policy_records("liger")
SCENARIOS = {
    "defaults": {},
    "kl": {"beta": 0.1},
    "kl_bias_corrected": {"beta": 0.1, "use_bias_correction_kl": True},
    "delta": {"delta": 1.3},
    "rollout_token_truncate": {"rollout_correction": "token_truncate", "rollout_correction_max": 1.2},
}
# the record's settings: beta=0.0 and no rollout weights for Liger's luspo
SKIP = {("luspo", "kl"), ("luspo", "kl_bias_corrected"), ("luspo", "rollout_token_truncate")}
DELTA = {"grpo", "bnpo", "dapo", "dr_grpo", "gspo", "luspo"}
CASES = [(item, scenario) for item in RECORDS for scenario in SCENARIOS
         if (item[0], scenario) not in SKIP and (scenario != "delta" or item[0] in DELTA)]


def liger_kwargs(loss, record) -> dict:
    call = ast.parse(record.name, mode="eval").body
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    kwargs.update(beta=loss.beta, use_bias_correction_kl=loss.use_bias_correction_kl)
    if loss.name == "cispo":
        kwargs["epsilon_high"] = 1.0 + loss.epsilon_high  # Liger's epsilon_high is the cap
    elif loss.name == "sapo":
        kwargs.update(sapo_temperature_pos=loss.temperature_pos, sapo_temperature_neg=loss.temperature_neg)
    elif loss.name == "vespo":
        kwargs.update(vespo_k_pos=loss.k_pos, vespo_lambda_pos=loss.lambda_pos, vespo_k_neg=loss.k_neg,
                      vespo_lambda_neg=loss.lambda_neg)
    else:
        kwargs.update(epsilon_low=loss.epsilon_low, epsilon_high=loss.epsilon_high, delta=loss.delta)
    if loss.name == "dr_grpo":
        kwargs["max_completion_length"] = loss.max_completion_length
    return kwargs


@pytest.mark.parametrize(("item", "scenario"), CASES, ids=[f"{record_id(i)}-{s}" for i, s in CASES])
@pytest.mark.parametrize("seed", SEEDS)
def test_liger_grpo_loss(item, scenario, seed):
    name, record = item
    loss = swift_zoo.build_loss(name, **{**record.zoo_kwargs, **SCENARIOS[scenario]})
    batch = policy_batch(seed)
    mask = batch["completion_mask"]
    value, grads = zoo_value_and_grad(loss, batch, num_items_in_batch=loss.count_units(batch))

    leaf = batch["per_token_logps"].clone().requires_grad_(True)
    ratio = None
    if loss.rollout_correction is not None:
        weights, _ = rollout_weights(batch["old_per_token_logps"] - batch["rollout_per_token_logps"], mask != 0,
                                     loss.rollout_correction, loss.rollout_correction_min, loss.rollout_correction_max)
        ratio = torch.where(mask != 0, weights, torch.ones((), dtype=weights.dtype))
    expected, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(
        leaf, mask.double(), batch["advantages"], mask.double(), ref_per_token_logps=batch["ref_per_token_logps"],
        old_per_token_logps=batch["old_per_token_logps"], vllm_is_ratio=ratio,
        num_items_in_batch=mask.sum().double(), **liger_kwargs(loss, record))
    expected.backward()
    what = f"{name} vs Liger {record.name} [{scenario}]"
    tolerance = FLOAT32_TEMPERATURES if name == "sapo" else {}
    assert_close(value, expected, what, **tolerance)
    assert_close(grads["per_token_logps"], leaf.grad, f"{what} gradient", **tolerance)
