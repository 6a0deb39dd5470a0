"""Unpaired and reward-model losses declared equal to TRL 1.16's ``KTOConfig(...)`` / ``RewardConfig(...)``.

``KTOTrainer._compute_loss`` is driven as ``DPOTrainer``'s is (``test_trl_dpo``): a trainer made without
``__init__``, the real config, precomputed reference log-probs (``precompute_ref_logps``) and a stub policy
returning fixed per-token log-probs for the completions and for the mismatched KL completions.
``RewardTrainer.compute_loss`` is driven with a stub model whose logits are the ``[2B, 1]`` rewards (chosen
rows first), with and without a ``margin`` column. Values and gradients must agree.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not installed (the references nox session installs trl==1.16.0)")

from _loss_equivalences import (
    Accelerator,
    StubModel,
    assert_close,
    build_zoo,
    declared,
    namespace,
    parse_call,
    record_id,
)
from trl import KTOConfig, KTOTrainer, RewardConfig, RewardTrainer

KTO_RECORDS = declared("trl", "KTOConfig(")
REWARD_RECORDS = declared("trl", "RewardConfig(")
ROWS, WIDTH = 6, 8


def config(cls, kwargs, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(output_dir=str(tmp_path), report_to=[], use_cpu=True, **kwargs)


def metrics_state(trainer) -> None:
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer._total_train_tokens = 0
    trainer._tp_size = 1


@pytest.mark.parametrize("item", KTO_RECORDS, ids=[record_id(item) for item in KTO_RECORDS])
@pytest.mark.parametrize("seed", [0, 1])
def test_unpaired_equals_trl_kto(item, seed, tmp_path):
    name, record = item
    function, kwargs = parse_call(record.name)
    assert function == "KTOConfig"
    args = config(KTOConfig, kwargs, tmp_path)
    generator = torch.Generator().manual_seed(seed)
    label = torch.tensor([True, False, True, True, False, False])
    mask = torch.zeros(ROWS, WIDTH, dtype=torch.long)
    for row in range(ROWS):
        start = int(torch.randint(1, 3, (), generator=generator))
        mask[row, start:start + int(torch.randint(2, WIDTH - start, (), generator=generator))] = 1
    shift_mask = mask[:, 1:].double()
    policy = -(0.1 + 2 * torch.rand(ROWS, WIDTH - 1, generator=generator, dtype=torch.float64))
    kl_policy = -(0.1 + 2 * torch.rand(ROWS, WIDTH - 1, generator=generator, dtype=torch.float64)) * shift_mask
    reference = -(0.1 + 2 * torch.rand(ROWS, generator=generator, dtype=torch.float64)) * 4
    kl_reference = -(0.1 + 2 * torch.rand(ROWS, generator=generator, dtype=torch.float64)) * 4
    input_ids = torch.randint(0, 30, (ROWS, WIDTH), generator=generator)
    kl_ids = torch.randint(0, 30, (ROWS, WIDTH), generator=generator)
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(mask), "completion_mask": mask,
             "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(mask), "KL_completion_mask": mask,
             "label": label, "ref_logps": reference, "ref_KL_logps": kl_reference}

    leaf = policy.clone().requires_grad_(True)
    zeros = torch.zeros_like(policy)

    def outputs(**call):
        tokens = kl_policy if call["input_ids"] is kl_ids else leaf * shift_mask
        return namespace(log_probs=tokens, entropy=zeros, mean_logits=zeros)

    trainer = KTOTrainer.__new__(KTOTrainer)
    trainer.args, trainer.accelerator, trainer.model = args, Accelerator(), StubModel(None)
    trainer.aux_loss_enabled, trainer.precompute_ref_logps = False, True
    trainer.calculate_KL = args.loss_type != "apo_zero_unpaired"
    trainer.beta, trainer.loss_type = args.beta, args.loss_type
    trainer.desirable_weight, trainer.undesirable_weight = args.desirable_weight, args.undesirable_weight
    metrics_state(trainer)
    expected = KTOTrainer._compute_loss(trainer, StubModel(outputs), dict(batch), False)
    expected.backward()
    expected_grad = leaf.grad.clone()

    leaf.grad = None
    found = build_zoo(name, record)({
        "policy_logps": (leaf * shift_mask).sum(1), "reference_logps": reference, "is_desirable": label,
        "policy_kl_logps": kl_policy.sum(1), "reference_kl_logps": kl_reference,
    })
    found.backward()
    assert_close(found, expected, f"{name} value vs TRL {record.name}")
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs TRL {record.name}")


@pytest.mark.parametrize("item", REWARD_RECORDS, ids=[record_id(item) for item in REWARD_RECORDS])
@pytest.mark.parametrize("with_margin", [False, True])
def test_reward_model_equals_trl(item, with_margin, tmp_path):
    name, record = item
    function, kwargs = parse_call(record.name)
    assert function == "RewardConfig"
    args = config(RewardConfig, kwargs, tmp_path)
    generator = torch.Generator().manual_seed(int(with_margin))
    pairs = 5
    rewards = torch.randn(2 * pairs, 1, generator=generator, dtype=torch.float64)
    margin = torch.rand(pairs, generator=generator, dtype=torch.float64)
    leaf = rewards.clone().requires_grad_(True)
    trainer = RewardTrainer.__new__(RewardTrainer)
    trainer.args, trainer.accelerator, trainer.model = args, Accelerator(), StubModel(None)
    metrics_state(trainer)
    inputs = {"input_ids": torch.zeros(2 * pairs, 3, dtype=torch.long),
              "attention_mask": torch.ones(2 * pairs, 3, dtype=torch.long)}
    if with_margin:
        inputs["margin"] = margin
    expected = RewardTrainer.compute_loss(trainer, StubModel(namespace(logits=leaf)), inputs)
    expected.backward()
    expected_grad = leaf.grad.clone()

    leaf.grad = None
    outputs = {"chosen_rewards": leaf[:pairs, 0], "rejected_rewards": leaf[pairs:, 0]}
    if with_margin:
        outputs["margin"] = margin
    found = build_zoo(name, record)(outputs)
    found.backward()
    assert_close(found, expected, f"{name} value vs TRL {record.name}")
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs TRL {record.name}")
