"""Bad configurations fail when the trainer is built, with a message naming what was expected and what came."""

from __future__ import annotations

import pytest
from conftest import make_trainer
from trl import DPOConfig, GRPOConfig

import swift_zoo
from swift_zoo.integrations.trl._fields import loss_kwargs_from_config, unhonoured_fields


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


@pytest.mark.parametrize(("kind", "loss", "config", "field"), [
    ("DPOTrainer", "dpo", {"loss_type": ["ipo"]}, "loss_type"),
    ("SFTTrainer", "cross_entropy", {"loss_type": "dft"}, "loss_type"),
    # TRL applies these to every loss type; these zoo losses do not take them
    ("DPOTrainer", "nca_pair", {"f_divergence_type": "js_divergence"}, "f_divergence_type"),
    ("DPOTrainer", "aot", {"use_weighting": True}, "use_weighting"),
    ("DPOTrainer", "simpo", {"ld_alpha": 0.5}, "ld_alpha"),
    # GRPO: a loss_type or level naming another loss than the one named; options the zoo cannot reproduce
    ("GRPOTrainer", "grpo", {"importance_sampling_level": "sequence"}, "importance_sampling_level"),
    ("GRPOTrainer", "grpo", {"loss_type": "sapo"}, "loss_type"),
    ("GRPOTrainer", "grpo", {"entropy_coef": 0.01}, "entropy_coef"),
    ("GRPOTrainer", "dapo", {"entropy_coef": 0.01, "top_entropy_quantile": 0.2}, "entropy_coef"),
    ("GRPOTrainer", "dapo", {"use_adaptive_entropy": True}, "use_adaptive_entropy"),
])
def test_trl_options_the_zoo_loss_cannot_honour_are_refused(kind, loss, config, field, model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match=f"not supported with a zoo loss: {field}="):
        make_trainer(kind, model_dir, tmp_path, zoo={"loss_type": loss}, **config)


@pytest.mark.parametrize(("config", "message"), [
    ({"loss_type": "sapo"}, r"loss_type='sapo' \(TRL's GRPOConfig\(loss_type='sapo'\) is the zoo loss 'sapo', not "
                            r"'grpo': leave zoo_config\['loss_type'\] out"),
    ({"importance_sampling_level": "sequence"},
     r"importance_sampling_level='sequence' \(TRL's GRPOConfig\(loss_type='dapo', "
     r"importance_sampling_level='sequence'\) has no zoo loss declared equal, and the zoo loss here is 'grpo'"),
    ({"entropy_coef": 0.01}, r"entropy_coef=0.01 \(TRL's bonus is the mean entropy per token whatever the loss type, "
                             r"while grpo aggregates per sequence \(loss_agg_mode='seq-mean-token-mean'\)"),
])
def test_grpo_refusals_say_why(config, message, model_dir, tmp_path):
    with pytest.raises(swift_zoo.ConfigError, match=message):
        make_trainer("GRPOTrainer", model_dir, tmp_path, zoo={"loss_type": "grpo"}, **config)


GRPO_LOSS_TYPES = [("grpo", "token", "grpo"), ("dapo", "token", "dapo"), ("bnpo", "token", "bnpo"),
                   ("dr_grpo", "token", "dr_grpo"), ("cispo", "token", "cispo"), ("sapo", "token", "sapo"),
                   ("vespo", "token", "vespo"), ("grpo", "sequence", "gspo"), ("luspo", "sequence", "luspo")]


@pytest.mark.parametrize(("loss_type", "level", "zoo_loss"), GRPO_LOSS_TYPES)
def test_grpo_loss_type_selects_the_declared_zoo_equal(loss_type, level, zoo_loss, model_dir, tmp_path):
    trainer = make_trainer("GRPOTrainer", model_dir, tmp_path, zoo={}, loss_type=loss_type,
                           importance_sampling_level=level)
    assert trainer.zoo_loss.name == zoo_loss
    named = make_trainer("GRPOTrainer", model_dir, tmp_path, zoo={"loss_type": zoo_loss}, loss_type=loss_type,
                         importance_sampling_level=level)  # the same loss named: consistent, not refused
    assert type(named.zoo_loss) is type(trainer.zoo_loss)


def test_every_trl_grpo_loss_type_is_selected_or_refused():
    # each value GRPOConfig.loss_type documents has a zoo equal at TRL's default level (luspo: at "sequence")
    import re

    documented = set(re.findall(r"'(\w+)'", GRPOConfig.__dataclass_fields__["loss_type"].metadata["help"].split(
        "Supported values are", 1)[1].split(".", 1)[0]))
    assert documented == {loss_type for loss_type, _, _ in GRPO_LOSS_TYPES}


def test_a_grpo_setting_without_a_zoo_equal_is_refused_with_the_known_ones(model_dir, tmp_path):
    message = (r"no zoo loss declares it equals TRL's GRPOConfig\(loss_type='luspo'\); TRL's settings with a zoo "
               r"equal: .*GRPOConfig\(loss_type='luspo', importance_sampling_level='sequence'\) -> luspo")
    with pytest.raises(swift_zoo.ConfigError, match=message):
        make_trainer("GRPOTrainer", model_dir, tmp_path, zoo={}, loss_type="luspo")


def test_a_value_from_the_trl_config_that_the_loss_rejects_names_the_trl_field(model_dir, tmp_path):
    # vespo folds token weights into its sequence ratio, so a sequence-level correction is refused, as TRL does
    message = (r"GRPOConfig.vllm_importance_sampling_mode='sequence_mask' \(the zoo's rollout_correction\): "
               r"vespo: rollout_correction must be None, 'token_truncate' or 'token_mask'")
    with pytest.raises(swift_zoo.ConfigError, match=message):
        make_trainer("GRPOTrainer", model_dir, tmp_path, zoo={"loss_type": "vespo"}, use_vllm=True)


def test_rollout_correction_without_sampler_logprobs_is_refused(model_dir, tmp_path):
    zoo = {"loss_type": "dapo", "loss_kwargs": {"rollout_correction": "token_truncate"}}
    with pytest.raises(swift_zoo.ConfigError, match="reads the sampler's log-probs; GRPOTrainer has them only from "
                                                    "vLLM"):
        make_trainer("GRPOTrainer", model_dir, tmp_path, zoo=zoo)


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
    options = {"f_divergence_type": "reverse_kl", "f_alpha_divergence_coef": 0.5, "use_weighting": False}  # defaults
    assert _kwargs("dpo", "dpo", dpo) == {"beta": 0.3, **options}  # TRL's sigmoid ignores label_smoothing
    assert _kwargs("dpo", "robust_dpo", dpo) == {"beta": 0.3, "label_smoothing": 0.2, **options}
    assert _kwargs("dpo", "discopop", dpo) == {"beta": 0.3, "tau": 0.07, **options}
    assert _kwargs("dpo", "simpo", dpo, {"gamma_beta_ratio": 0.3}) == {"beta": 0.3, "gamma_beta_ratio": 0.3}


def test_dpo_family_options_fill_the_zoo_options(tmp_path):
    dpo = DPOConfig(**cpu_config(tmp_path), f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.3,
                    ld_alpha=0.5, use_weighting=True)
    assert _kwargs("dpo", "dpo", dpo) == {"beta": 0.1, "f_divergence_type": "alpha_divergence",
                                          "f_alpha_divergence_coef": 0.3, "ld_alpha": 0.5, "use_weighting": True}
    assert _kwargs("dpo", "nca_pair", dpo) == {"beta": 0.1, "ld_alpha": 0.5, "use_weighting": True}
    assert unhonoured_fields("dpo", swift_zoo.get_loss("nca_pair"), dpo) == [
        ("f_divergence_type", "alpha_divergence", "TRL applies it to every loss type, and the zoo loss 'nca_pair' "
                                                  "takes no 'f_divergence_type'")]
    assert [f for f, _, _ in unhonoured_fields("dpo", swift_zoo.get_loss("simpo"), dpo)] == [
        "f_divergence_type", "ld_alpha", "use_weighting"]
    assert unhonoured_fields("dpo", swift_zoo.get_loss("simpo"), DPOConfig(**cpu_config(tmp_path))) == []


def test_grpo_options_fill_the_zoo_options(tmp_path):
    args = GRPOConfig(**cpu_config(tmp_path), off_policy_mask_threshold=0.5, top_entropy_quantile=0.2,
                      entropy_coef=0.01, vespo_k_pos=1.5)
    found = _kwargs("grpo", "vespo", args)
    assert {k: found[k] for k in ("off_policy_mask_threshold", "top_entropy_quantile", "entropy_coef", "k_pos",
                                  "lambda_neg")} == {"off_policy_mask_threshold": 0.5, "top_entropy_quantile": 0.2,
                                                     "entropy_coef": 0.01, "k_pos": 1.5, "lambda_neg": 2.0}
    assert "rollout_correction" not in found  # no vLLM: TRL computes no importance-sampling ratio
    vllm = GRPOConfig(**cpu_config(tmp_path), use_vllm=True, vllm_importance_sampling_mode="token_mask",
                      vllm_importance_sampling_clip_min=0.5, vllm_importance_sampling_clip_max=None)
    found = _kwargs("grpo", "grpo", vllm)
    assert (found["rollout_correction"], found["rollout_correction_min"], found["rollout_correction_max"]) == (
        "token_mask", 0.5, None)  # TRL's None is "no upper bound", not the zoo default 2.0
    off = GRPOConfig(**cpu_config(tmp_path), use_vllm=True, vllm_importance_sampling_correction=False)
    assert "rollout_correction" not in _kwargs("grpo", "grpo", off)


def test_grpo_fields_follow_trl_semantics(tmp_path):
    args = GRPOConfig(**cpu_config(tmp_path), beta=0.04, epsilon=0.1, max_completion_length=64)
    shared = {"use_bias_correction_kl": True, "top_entropy_quantile": 1.0, "entropy_coef": 0.0}  # TRL's defaults
    assert _kwargs("grpo", "dapo", args) == {"beta": 0.04, "epsilon_low": 0.1, "epsilon_high": 0.1,
                                             **shared}  # epsilon_high=None means epsilon
    assert _kwargs("grpo", "dr_grpo", args)["max_completion_length"] == 64
    assert _kwargs("grpo", "cispo", args) == {"beta": 0.04, **shared}  # no lower clip, cap left default
    capped = GRPOConfig(**cpu_config(tmp_path), epsilon_high=5.0)
    assert _kwargs("grpo", "cispo", capped)["epsilon_high"] == 4.0  # TRL caps at epsilon_high, the zoo at 1 + it
    assert _kwargs("grpo", "sapo", GRPOConfig(**cpu_config(tmp_path), sapo_temperature_neg=2.0))[
        "temperature_neg"] == 2.0


def test_grpo_settings_are_read_from_equal_trl_records_only():
    from swift_zoo import Equivalence
    from swift_zoo.integrations.trl._grpo_loss_types import grpo_setting

    def record(name, library="trl", differs=""):
        return Equivalence(library, name, differs=differs)

    assert grpo_setting(record("GRPOConfig(loss_type='grpo')")) == ("grpo", "token")
    assert grpo_setting(record("GRPOConfig(loss_type='luspo', importance_sampling_level='sequence')")) == (
        "luspo", "sequence")
    assert grpo_setting(record("GRPOConfig(loss_type='bnpo')", differs="per micro-batch")) is None  # not equal
    assert grpo_setting(record("GRPOConfig(loss_type='grpo', beta=0.04)")) is None  # a setting beyond the two
    assert grpo_setting(record("GRPOConfig(loss_type='grpo')", library="verl")) is None
    assert grpo_setting(record("DPOConfig(loss_type='sigmoid')")) is None
    assert grpo_setting(record("--rlhf_type grpo --loss_type grpo")) is None  # not a call


def test_two_losses_declaring_one_trl_setting_leave_the_choice_to_the_user():
    from swift_zoo import REGISTRY, Equivalence
    from swift_zoo.integrations.trl._grpo_loss_types import zoo_loss_for_grpo

    class MySapo(swift_zoo.get_loss("sapo")):
        name = "my_sapo"
        equivalents = (Equivalence("trl", "GRPOConfig(loss_type='sapo')"),)

    REGISTRY.register("loss", MySapo, name="my_sapo")
    try:
        with pytest.raises(swift_zoo.ConfigError, match=r"several zoo losses declare they equal TRL's "
                                                        r"GRPOConfig\(loss_type='sapo'\): sapo, my_sapo; name one"):
            zoo_loss_for_grpo("T", "sapo", "token")
        assert zoo_loss_for_grpo("T", "grpo", "sequence") == "gspo"
    finally:
        REGISTRY.unregister("loss", "my_sapo")
