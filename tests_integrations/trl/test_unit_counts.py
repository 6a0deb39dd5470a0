"""The unit count a pair trainer divides by is the loss's own, also for a pair with an empty answer.

TRL's text DPO data never has an empty completion (every answer keeps its end-of-turn token), but a vision
batch truncated to ``max_length`` can lose its whole answer. Here a collator empties the rejected answer of
one pair in every batch, as such a truncation would. With one micro-batch per step, the loss the trainer
trains on (divided by the window's count) must equal the loss's own local mean (which divides by the units
it counts): a reference-free loss does not count the emptied pair, the DPO family counts every pair,
``sft`` counts the chosen tokens.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_trainer, train_steps

from swift_zoo.integrations.trl import ZooDPOTrainer
from swift_zoo.integrations.trl.experimental import ZooCPOTrainer

EMPTIED = 1  # the pair whose rejected answer is emptied in every batch


class EmptyRejectedAnswer:
    """TRL's collator, then the rejected answer of pair ``EMPTIED`` masked out entirely (DPO layout)."""

    def __init__(self, collator) -> None:
        self.collator = collator

    def __call__(self, examples):
        batch = self.collator(examples)
        pairs = batch["input_ids"].shape[0] // 2
        batch["completion_mask"][pairs + EMPTIED] = 0
        return batch


class EmptyRejectedLabels(EmptyRejectedAnswer):
    """The same in ``trl.experimental``'s CPO layout: every rejected label of pair ``EMPTIED`` ignored."""

    def __call__(self, examples):
        batch = self.collator(examples)
        batch["rejected_labels"][EMPTIED] = -100
        return batch


class Recorder:
    """Records, per micro-step, the trained loss, the loss's local mean and the count it was divided by."""

    def _zoo_loss(self, model_outputs, labels=None, *, num_items_in_batch, mode):
        loss = super()._zoo_loss(model_outputs, labels, num_items_in_batch=num_items_in_batch, mode=mode)
        with torch.no_grad():
            local = self.zoo_loss(model_outputs, labels)
        self.records.append((loss.detach().clone(), local, num_items_in_batch))
        return loss


LOSSES = [
    ("simpo", 3),  # the pair with the empty answer is not a unit
    ("dpo", 4),
    ("sft", None),  # the chosen tokens (a weighted_sum counts per term: test_accumulation)
]


@pytest.mark.parametrize(("loss", "pairs"), LOSSES)
def test_dpo_trainer_divides_by_the_loss_own_count(loss, pairs, model_dir, tmp_path):
    trainer = make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": loss},
                           trainer_class=type("RecordingDPO", (Recorder, ZooDPOTrainer), {}),
                           per_device_train_batch_size=4, gradient_accumulation_steps=1)
    trainer.data_collator = EmptyRejectedAnswer(trainer.data_collator)
    trainer.records = []
    train_steps(trainer)
    assert len(trainer.records) == 4
    for trained, local, count in trainer.records:
        assert float(trained) == pytest.approx(float(local), rel=1e-6), (float(trained), float(local), count)
        if pairs is not None:
            assert int(count) == pairs


def test_cpo_trainer_skips_the_empty_pair_too(model_dir, tmp_path):
    trainer = make_trainer("CPOTrainer", model_dir, tmp_path, zoo={"loss_type": "simpo"},
                           trainer_class=type("RecordingCPO", (Recorder, ZooCPOTrainer), {}),
                           per_device_train_batch_size=4, gradient_accumulation_steps=1)
    trainer.data_collator = EmptyRejectedLabels(trainer.data_collator)
    trainer.records = []
    train_steps(trainer)
    assert [int(count) for _, _, count in trainer.records] == [3] * 4
    for trained, local, _ in trainer.records:
        assert float(trained) == pytest.approx(float(local), rel=1e-6)
