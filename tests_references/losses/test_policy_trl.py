"""Every policy loss that declares itself equal to a TRL 1.16 ``GRPOConfig(...)`` against ``GRPOTrainer._compute_loss``.

The trainer is driven without a model: an instance made with ``GRPOTrainer.__new__`` gets the real config built
from the declared spelling plus the scenario's settings, and the attributes ``__init__`` copies from it; its
``_get_per_token_logps_and_entropies`` returns the test's per-token log-probs (a leaf) and entropies. Values and
gradients with respect to the log-probs are compared, float64, one process, one micro-batch.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from types import SimpleNamespace

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

trl = pytest.importorskip("trl", reason="trl is not installed (the references nox session installs trl==1.16.0)")
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

RECORDS = policy_records("trl")
CLIPPED = {"grpo", "bnpo", "dapo", "dr_grpo", "gspo", "luspo"}  # TRL applies delta to these loss types
# scenario: (zoo kwargs, TRL config kwargs, losses it applies to (None: all))
SCENARIOS = {
    "defaults": ({}, {}, None),
    "kl": ({"beta": 0.1}, {"beta": 0.1}, None),
    "kl_bias_corrected": ({"beta": 0.1, "use_bias_correction_kl": True}, {"beta": 0.1, "use_bias_correction_kl": True},
                          None),
    "delta": ({"delta": 1.3}, {"delta": 1.3}, CLIPPED),
    "top_entropy": ({"top_entropy_quantile": 0.4}, {"top_entropy_quantile": 0.4}, None),
    "off_policy_mask": ({"off_policy_mask_threshold": 0.02}, {"off_policy_mask_threshold": 0.02}, None),
    "rollout_token_truncate": ({"rollout_correction": "token_truncate", "rollout_correction_max": 1.2}, {}, None),
    "rollout_token_mask": ({"rollout_correction": "token_mask", "rollout_correction_min": 0.8,
                            "rollout_correction_max": 1.2}, {}, None),
    "rollout_sequence_truncate": ({"rollout_correction": "sequence_truncate", "rollout_correction_max": 1.5}, {},
                                  None),
}
CASES = [(item, scenario) for item in RECORDS for scenario, (_, _, only) in SCENARIOS.items()
         if (only is None or item[0] in only)
         and not (item[0] == "vespo" and scenario.startswith("rollout_sequence"))]


def trl_settings(loss) -> dict:
    """The GRPOConfig values the record's ``settings`` name, read off the zoo loss."""
    name = loss.name
    settings = {"beta": loss.beta, "use_bias_correction_kl": loss.use_bias_correction_kl,
                "top_entropy_quantile": loss.top_entropy_quantile,
                "off_policy_mask_threshold": loss.off_policy_mask_threshold}
    if name == "cispo":
        settings["epsilon_high"] = 1.0 + loss.epsilon_high  # TRL's epsilon_high is the cap
    elif name == "sapo":
        settings.update(sapo_temperature_pos=loss.temperature_pos, sapo_temperature_neg=loss.temperature_neg)
    elif name == "vespo":
        settings.update(vespo_k_pos=loss.k_pos, vespo_lambda_pos=loss.lambda_pos, vespo_k_neg=loss.k_neg,
                        vespo_lambda_neg=loss.lambda_neg)
    else:
        settings.update(epsilon=loss.epsilon_low, epsilon_high=loss.epsilon_high, delta=loss.delta)
    if name == "dr_grpo":
        settings["max_completion_length"] = loss.max_completion_length
    return settings


class _Accelerator:
    num_processes = 1

    @staticmethod
    def gather(tensor):
        return tensor

    @staticmethod
    def reduce(tensor, reduction="sum"):
        return tensor

    @staticmethod
    def pad_across_processes(tensor, dim=0, pad_index=0):
        return tensor


def trl_trainer(config: GRPOConfig, per_token_logps: torch.Tensor, entropies: torch.Tensor,
                rollout: bool) -> GRPOTrainer:
    """A GRPOTrainer without ``__init__``: the attributes ``_compute_loss`` reads, copied from ``config``."""
    trainer = GRPOTrainer.__new__(GRPOTrainer)
    trainer.args = config
    for key in ("loss_type", "beta", "importance_sampling_level", "off_policy_mask_threshold", "top_entropy_quantile",
                "max_completion_length", "entropy_coef", "use_adaptive_entropy"):
        setattr(trainer, key, getattr(config, key))
    trainer.epsilon_low = config.epsilon
    trainer.epsilon_high = config.epsilon_high if config.epsilon_high is not None else config.epsilon
    trainer._entropy_bonus_enabled = config.entropy_coef != 0.0
    trainer.aux_loss_enabled = False
    trainer.use_vllm = rollout
    trainer.vllm_importance_sampling_correction = rollout
    trainer.current_gradient_accumulation_steps = 1
    trainer.accelerator = _Accelerator()
    trainer.model = SimpleNamespace(training=True)
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (per_token_logps, entropies, None)
    return trainer


@pytest.mark.parametrize(("item", "scenario"), CASES, ids=[f"{record_id(i)}-{s}" for i, s in CASES])
@pytest.mark.parametrize("seed", SEEDS)
def test_trl_grpo_trainer_loss(item, scenario, seed, tmp_path):
    name, record = item
    zoo_kwargs, trl_kwargs, _ = SCENARIOS[scenario]
    loss = swift_zoo.build_loss(name, **{**record.zoo_kwargs, **zoo_kwargs})
    batch = policy_batch(seed)
    mask = batch["completion_mask"]
    tokens = mask.sum()
    value, grads = zoo_value_and_grad(loss, batch, num_items_in_batch=loss.count_units(batch))

    call = ast.parse(record.name, mode="eval").body
    spelled = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    config = GRPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True,
                        **{**spelled, **trl_settings(loss), **trl_kwargs})
    leaf = batch["per_token_logps"].clone().requires_grad_(True)
    rollout = loss.rollout_correction is not None
    trainer = trl_trainer(config, leaf, batch["entropy"], rollout)
    size, length = mask.shape
    inputs = {
        "prompt_ids": torch.zeros(size, 1, dtype=torch.long), "prompt_mask": torch.ones(size, 1, dtype=torch.long),
        "completion_ids": torch.zeros(size, length, dtype=torch.long), "completion_mask": mask,
        "advantages": batch["advantages"], "old_per_token_logps": batch["old_per_token_logps"],
        "ref_per_token_logps": batch["ref_per_token_logps"], "num_items_in_batch": tokens.to(torch.float64),
        "sampling_per_token_logps": batch["rollout_per_token_logps"],  # the sampler's, as the zoo's OPSM reads
    }
    if rollout:  # TRL computes these weights at generation time; the loss side multiplies (or, VESPO, folds) them
        weights, _ = rollout_weights(batch["old_per_token_logps"] - batch["rollout_per_token_logps"], mask != 0,
                                     loss.rollout_correction, loss.rollout_correction_min, loss.rollout_correction_max)
        inputs["importance_sampling_ratio"] = torch.where(mask != 0, weights, torch.ones((), dtype=weights.dtype))
    expected = trainer._compute_loss(None, inputs)
    expected.backward()
    what = f"{name} vs TRL {record.name} [{scenario}]"
    tolerance = FLOAT32_TEMPERATURES if name == "sapo" else {}
    assert_close(value, expected, what, **tolerance)
    assert_close(grads["per_token_logps"], leaf.grad, f"{what} gradient", **tolerance)
    assert leaf.grad.abs().sum() > 0
