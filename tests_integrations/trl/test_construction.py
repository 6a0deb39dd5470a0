"""Bad configurations fail when the trainer is built, with a message naming what was expected and what came."""

from __future__ import annotations

import pytest
from conftest import make_trainer
from trl import DPOConfig, GRPOConfig

import swift_zoo
from swift_zoo.integrations.trl._fields import loss_kwargs_from_config


def test_unknown_loss_type_names_close_matches(model_dir, tmp_path):
    with pytest.raises(swift_zoo.UnknownLossError, match="unknown loss 'dpoo'; did you mean 'dpo'"):
        make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": "dpoo"})


def test_missing_loss_type(model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match="ZooSFTTrainer: zoo_config needs a 'loss_type'.*keys found: loss_kwargs"):
        make_trainer("SFTTrainer", model_dir, tmp_path, zoo={"loss_kwargs": {}})


@pytest.mark.parametrize(("kind", "loss", "instead"), [
    ("DPOTrainer", "grpo", "use ZooGRPOTrainer instead"),
    ("SFTTrainer", "dpo", "use ZooDPOTrainer instead"),
    ("GRPOTrainer", "kto", "use ZooKTOTrainer instead"),
    ("DPOTrainer", "ppo", "no zoo TRL trainer supplies them"),
    ("SFTTrainer", "infonce", "no zoo TRL trainer supplies them"),
])
def test_a_loss_the_trainer_cannot_feed_says_which_trainer_can(kind, loss, instead, model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match=f"loss '{loss}' needs .*cannot supply.*{instead}"):
        make_trainer(kind, model_dir, tmp_path, zoo={"loss_type": loss})


@pytest.mark.parametrize(("kind", "config", "field"), [
    ("DPOTrainer", {"loss_type": ["ipo"]}, "loss_type"),
    ("DPOTrainer", {"f_divergence_type": "js_divergence"}, "f_divergence_type"),
    ("DPOTrainer", {"use_weighting": True}, "use_weighting"),
    ("SFTTrainer", {"loss_type": "dft"}, "loss_type"),
    ("GRPOTrainer", {"importance_sampling_level": "sequence"}, "importance_sampling_level"),
    ("GRPOTrainer", {"top_entropy_quantile": 0.5}, "top_entropy_quantile"),
])
def test_trl_options_that_bypass_the_zoo_loss_are_refused(kind, config, field, model_dir, tmp_path):
    zoo = {"loss_type": {"DPOTrainer": "dpo", "SFTTrainer": "cross_entropy", "GRPOTrainer": "grpo"}[kind]}
    with pytest.raises(swift_zoo.ConfigError, match=f"not supported with a zoo loss: {field}="):
        make_trainer(kind, model_dir, tmp_path, zoo=zoo, **config)


def test_a_hyperparameter_set_twice_differently_is_a_conflict(model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match=r"'beta' is set twice: DPOConfig.beta=0.5 and "
                                                    r"zoo_config\['loss_kwargs'\]\['beta'\]=0.2"):
        make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": "dpo", "loss_kwargs": {"beta": 0.2}},
                     beta=0.5)


def test_loss_kwargs_are_validated_by_the_zoo(model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match="unknown kwarg 'betta'; did you mean 'beta'"):
        make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": "dpo", "loss_kwargs": {"betta": 0.2}})


# ------------------------------------------------------------- field mapping (no model)
def cpu_config(path):
    return {"output_dir": str(path), "use_cpu": True, "bf16": False, "report_to": "none"}


def _kwargs(trainer, name, args, loss_kwargs=None):
    return loss_kwargs_from_config(trainer, "T", swift_zoo.get_loss(name), args, loss_kwargs or {})


def test_trl_fields_fill_zoo_kwargs_of_the_same_meaning(tmp_path):
    dpo = DPOConfig(**cpu_config(tmp_path), beta=0.3, label_smoothing=0.2, discopop_tau=0.07)
    assert _kwargs("dpo", "dpo", dpo) == {"beta": 0.3}  # TRL's sigmoid ignores label_smoothing
    assert _kwargs("dpo", "robust_dpo", dpo) == {"beta": 0.3, "label_smoothing": 0.2}
    assert _kwargs("dpo", "discopop", dpo) == {"beta": 0.3, "tau": 0.07}
    assert _kwargs("dpo", "simpo", dpo, {"gamma_beta_ratio": 0.3}) == {"beta": 0.3, "gamma_beta_ratio": 0.3}


def test_grpo_fields_follow_trl_semantics(tmp_path):
    args = GRPOConfig(**cpu_config(tmp_path), beta=0.04, epsilon=0.1, max_completion_length=64)
    assert _kwargs("grpo", "dapo", args) == {"beta": 0.04, "epsilon_low": 0.1, "epsilon_high": 0.1,
                                             "use_bias_correction_kl": True}  # epsilon_high=None means epsilon
    assert _kwargs("grpo", "dr_grpo", args)["max_completion_length"] == 64
    assert _kwargs("grpo", "cispo", args) == {"beta": 0.04, "use_bias_correction_kl": True}  # no lower clip, cap left default
    capped = GRPOConfig(**cpu_config(tmp_path), epsilon_high=5.0)
    assert _kwargs("grpo", "cispo", capped)["epsilon_high"] == 4.0  # TRL caps at epsilon_high, the zoo at 1 + it
    assert _kwargs("grpo", "sapo", GRPOConfig(**cpu_config(tmp_path), sapo_temperature_neg=2.0))[
        "temperature_neg"] == 2.0
