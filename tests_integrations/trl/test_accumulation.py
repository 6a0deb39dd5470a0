"""Gradient accumulation is exact in the zoo trainers: 4 micro-batches of 1 give the loss and gradient norm
of 1 batch of 4 at every step, on completions of different lengths (so a per-micro-batch mean would not).
CPO and ORPO are ``ZooCPOTrainer`` / ``ZooORPOTrainer`` over ``trl.experimental``.

GRPO is not here: changing the micro-batch size changes TRL's sampling of completions, so the two runs
train on different data; its window count is checked against TRL's own exact case in test_equivalents
(``dapo``, ``steps_per_generation == gradient_accumulation_steps``) and in test_grpo.py."""

from __future__ import annotations

import pytest
import tiny
from conftest import assert_same_steps, make_trainer, train_steps, uneven_sft

CASES = [
    ("SFTTrainer", {"loss_type": "cross_entropy"}, uneven_sft),
    ("SFTTrainer", {"loss_type": "dft"}, uneven_sft),
    ("SFTTrainer", {"loss_type": "fused_linear_cross_entropy"}, uneven_sft),
    ("DPOTrainer", {"loss_type": "dpo"}, tiny.preference_dataset),
    ("DPOTrainer", {"loss_type": "simpo"}, tiny.preference_dataset),
    ("KTOTrainer", {"loss_type": "apo_zero_unpaired"}, tiny.unpaired_dataset),
    ("CPOTrainer", {"loss_type": "cpo"}, tiny.preference_dataset),
    ("ORPOTrainer", {"loss_type": "orpo"}, tiny.preference_dataset),
]


@pytest.mark.parametrize(("kind", "zoo", "data"), CASES, ids=[f"{k}-{z['loss_type']}" for k, z, _ in CASES])
def test_four_micro_batches_of_one_equal_one_batch_of_four(kind, zoo, data, model_dir, tmp_path):
    dataset = data() if data else None
    one_by_four = make_trainer(kind, model_dir, tmp_path / "a", zoo=zoo, dataset=dataset,
                               per_device_train_batch_size=4, gradient_accumulation_steps=1)
    four_by_one = make_trainer(kind, model_dir, tmp_path / "b", zoo=zoo, dataset=dataset,
                               per_device_train_batch_size=1, gradient_accumulation_steps=4)
    assert_same_steps(train_steps(four_by_one), train_steps(one_by_four), rtol=1e-5)


def test_the_sft_micro_batches_really_differ_in_tokens(model_dir, tmp_path):
    # The SFT data above really has uneven micro-batches: a per-micro-batch mean (divided by the steps) differs.
    trainer = make_trainer("SFTTrainer", model_dir, tmp_path, zoo={"loss_type": "cross_entropy"},
                           dataset=uneven_sft(), per_device_train_batch_size=1, gradient_accumulation_steps=4)
    counts = [int((batch["labels"][:, 1:] != -100).sum()) for batch in trainer.get_train_dataloader()]
    assert len(set(counts[:4])) > 1, counts
