"""Reference-free losses run with no reference model and no reference forward; every zoo trainer logs its
loss's metrics through TRL's metrics store into ``state.log_history``."""

from __future__ import annotations

import pytest
from conftest import make_trainer, train_steps


@pytest.mark.parametrize("loss_type", ["simpo", "orpo", "cpo", "alphapo"])
def test_reference_free_loss_loads_and_runs_no_reference(loss_type, model_dir, tmp_path, monkeypatch):
    from trl.trainer import dpo_trainer

    loads = []
    original = dpo_trainer.create_model_from_path
    monkeypatch.setattr(dpo_trainer, "create_model_from_path", lambda *a, **k: loads.append(a) or original(*a, **k))
    trainer = make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": loss_type}, ref=False)
    assert trainer.ref_model is None and loads == []
    forwards = []
    monkeypatch.setattr(trainer, "compute_ref_log_probs", lambda *a: forwards.append(a))
    history = train_steps(trainer)
    assert forwards == [] and len(history) == 4
    assert history[-1]["loss"] != history[0]["loss"]


def test_a_given_reference_model_is_dropped_with_a_warning(model_dir, tmp_path):
    with pytest.warns(UserWarning, match="ref_model is not used: simpo reads no reference log-probs"):
        trainer = make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": "simpo"})
    assert trainer.ref_model is None


def test_a_reference_loss_still_runs_the_reference_forward(model_dir, tmp_path, monkeypatch):
    trainer = make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": "dpo"})
    calls = []
    original = trainer.compute_ref_log_probs
    monkeypatch.setattr(trainer, "compute_ref_log_probs", lambda *a: calls.append(1) or original(*a))
    train_steps(trainer)
    assert len(calls) == 4 * 2  # one per micro-batch: 4 steps x GA 2


METRICS = [
    ("SFTTrainer", {"loss_type": "cross_entropy"}, {"token_accuracy", "num_tokens"}),
    ("SFTTrainer", {"loss_type": "dft"}, {"mean_token_prob", "nll"}),
    ("DPOTrainer", {"loss_type": "dpo"}, {"rewards/chosen", "rewards/margins", "rewards/accuracies", "logps/chosen"}),
    ("KTOTrainer", {"loss_type": "kto"}, {"kl", "chosen_reward", "rejected_reward"}),
    ("GRPOTrainer", {"loss_type": "grpo"}, {"clip_fraction", "ratio_mean", "entropy"}),
]


@pytest.mark.parametrize(("kind", "zoo", "keys"), METRICS, ids=[f"{k}-{z['loss_type']}" for k, z, _ in METRICS])
def test_loss_metrics_reach_the_log_history(kind, zoo, keys, model_dir, tmp_path):
    trainer = make_trainer(kind, model_dir, tmp_path, zoo=zoo)
    history = train_steps(trainer)
    for entry in history:
        assert keys <= set(entry), sorted(set(entry))
    expected = set(trainer.zoo_loss.metrics)
    assert expected and expected <= set(history[-1])
