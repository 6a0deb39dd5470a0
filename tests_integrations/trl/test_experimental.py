"""``ZooCPOTrainer`` and ``ZooORPOTrainer`` (over ``trl.experimental``): what the equivalence table cannot show.

The CPO rows with ``cpo_alpha=0`` run step by step in test_equivalents. Here: the NLL difference of CPO (equal
on chosen completions of equal length, different otherwise), ORPO's odds-ratio term against TRL's own
``odds_ratio_loss`` at every micro-step, evaluation, and the construction errors.
"""

from __future__ import annotations

import pytest
import torch
from conftest import STEPS, assert_same_steps, make_trainer, tiny, train_steps
from datasets import Dataset
from trl.experimental.cpo import CPOConfig

import swift_zoo
from swift_zoo.integrations.trl._fields import loss_kwargs_from_config
from swift_zoo.integrations.trl.experimental import ZooORPOTrainer


def uneven_chosen():
    # chosen completions of 2 to 5 words: their token counts differ within a micro-batch
    return Dataset.from_list([{"prompt": tiny.prompt(w), "chosen": tiny.answer(" ".join([w] * (2 + i % 4))),
                               "rejected": tiny.answer(tiny.wrong(i))} for i, w in enumerate(tiny.WORDS)])


def chosen_lengths(trainer) -> set[int]:
    return {int(n) for batch in trainer.get_train_dataloader()
            for n in (batch["chosen_labels"][:, 1:] != -100).sum(-1)}


def test_cpo_nll_equals_trl_on_equal_chosen_lengths_only(model_dir, tmp_path):
    # cpo_alpha=1 (CPOConfig's default): TRL's NLL is one token mean over the micro-batch's chosen tokens, the zoo's
    # a per-pair token mean averaged over pairs. They agree when every chosen completion has the same length.
    zoo = {"loss_type": "cpo"}
    trl_even = make_trainer("CPOTrainer", model_dir, tmp_path / "t1", loss_type="sigmoid")
    zoo_even = make_trainer("CPOTrainer", model_dir, tmp_path / "z1", zoo=zoo)
    assert len(chosen_lengths(zoo_even)) == 1
    assert_same_steps(train_steps(zoo_even), train_steps(trl_even))

    trl_uneven = make_trainer("CPOTrainer", model_dir, tmp_path / "t2", loss_type="sigmoid", dataset=uneven_chosen())
    zoo_uneven = make_trainer("CPOTrainer", model_dir, tmp_path / "z2", zoo=zoo, dataset=uneven_chosen())
    assert len(chosen_lengths(zoo_uneven)) > 1
    zoo_steps, trl_steps = train_steps(zoo_uneven), train_steps(trl_uneven)
    assert all(abs(a["loss"] - b["loss"]) > 1e-4 * abs(b["loss"]) for a, b in zip(zoo_steps, trl_steps))


class OddsRatioRecorder(ZooORPOTrainer):
    """At every micro-step: the zoo orpo's loss without its NLL, and minus TRL's odds_ratio_loss on the same
    log-probs (TRL's function takes length-averaged log-probs)."""

    def _zoo_loss(self, model_outputs, labels=None, *, num_items_in_batch, mode):
        with torch.no_grad():
            local = self.zoo_loss(model_outputs)  # the micro-batch's mean over pairs
            nll = self.zoo_loss.metrics["nll_chosen"]
            chosen = model_outputs["policy_chosen_logps"] / model_outputs["chosen_lengths"]
            rejected = model_outputs["policy_rejected_logps"] / model_outputs["rejected_lengths"]
            trl_losses = self.odds_ratio_loss(chosen, rejected)[0]
        self.records.append((float(local - nll), float(-trl_losses.mean())))
        return super()._zoo_loss(model_outputs, labels, num_items_in_batch=num_items_in_batch, mode=mode)


def test_orpo_odds_ratio_term_is_trls_at_every_micro_step(model_dir, tmp_path):
    trainer = make_trainer("ORPOTrainer", model_dir, tmp_path, zoo={"loss_type": "orpo"}, beta=0.5,
                           trainer_class=OddsRatioRecorder)
    trainer.records = []
    history = train_steps(trainer)
    assert len(trainer.records) == 2 * STEPS  # 2 micro-batches per step
    for zoo_term, trl_term in trainer.records:
        # float32: the zoo's term is its loss (about 6) minus its NLL (about 5.8), so rounding of 1e-6 absolute
        assert zoo_term == pytest.approx(trl_term, rel=1e-6, abs=2e-6) and trl_term > 0.1
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize("kind", ["CPOTrainer", "ORPOTrainer"])
def test_evaluation_logs_the_zoo_metrics(kind, model_dir, tmp_path):
    loss = {"CPOTrainer": "simpo", "ORPOTrainer": "orpo"}[kind]
    trainer = make_trainer(kind, model_dir, tmp_path, zoo={"loss_type": loss})
    metrics = trainer.evaluate(trainer.train_dataset)
    assert metrics["eval_loss"] > 0
    for key in ("eval_reward_accuracy", "eval_logps/chosen", "eval_logits/chosen"):
        assert key in metrics, sorted(metrics)


@pytest.mark.parametrize(("kind", "zoo", "config", "message"), [
    ("CPOTrainer", "cpo", {"loss_type": "simpo"}, "loss_type='simpo' .*use the zoo loss 'simpo'"),
    ("CPOTrainer", "simpo", {"loss_type": "hinge"}, "loss_type='hinge' .*not simpo"),
    ("CPOTrainer", "cpo", {"alpha": 0.25}, "alpha=0.25 .*the zoo loss 'alphapo'"),
])
def test_cpo_options_of_another_objective_are_refused(kind, zoo, config, message, model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match=f"not supported with a zoo loss: {message}"):
        make_trainer(kind, model_dir, tmp_path, zoo={"loss_type": zoo}, **config)


@pytest.mark.parametrize("kind", ["CPOTrainer", "ORPOTrainer"])
def test_a_loss_reading_a_reference_model_says_use_zoo_dpo(kind, model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match=f"Zoo{kind}: loss 'dpo' needs .*use ZooDPOTrainer instead"):
        make_trainer(kind, model_dir, tmp_path, zoo={"loss_type": "dpo"})


def test_moe_auxiliary_loss_is_refused(model_dir, tmp_path, monkeypatch):
    from transformers import LlamaConfig

    monkeypatch.setattr(LlamaConfig, "output_router_logits", True, raising=False)
    with pytest.raises(swift_zoo.ConfigError, match="ZooCPOTrainer: the model returns router logits"):
        make_trainer("CPOTrainer", model_dir, tmp_path, zoo={"loss_type": "cpo"})


def test_cpo_config_fills_the_zoo_kwargs(tmp_path):
    def kwargs(name, loss_kwargs=None, **fields):
        args = CPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **fields)
        return loss_kwargs_from_config("cpo", "T", swift_zoo.get_loss(name), args, loss_kwargs or {})

    assert kwargs("cpo", loss_type="ipo", beta=0.3) == {"beta": 0.3, "label_smoothing": 0.0, "loss_type": "ipo",
                                                        "cpo_alpha": 1.0}
    assert kwargs("simpo", beta=2.0, simpo_gamma=1.0, cpo_alpha=0.0) == {
        "beta": 2.0, "label_smoothing": 0.0, "sft_weight": 0.0, "gamma_beta_ratio": 0.5}
    assert "alpha" not in kwargs("alphapo")  # CPOConfig.alpha = 0 leaves the zoo default
    assert kwargs("alphapo", alpha=0.1)["alpha"] == 0.1
    assert kwargs("orpo", beta=0.2) == {"beta": 0.2}
    with pytest.raises(swift_zoo.ConfigError, match=r"'loss_type' is set twice: CPOConfig.loss_type='hinge'"):
        kwargs("cpo", {"loss_type": "ipo"}, loss_type="hinge")
