"""Every ``compared`` row of ``TRL_EQUIVALENTS``: the zoo trainer with the zoo loss against the TRL trainer with
its own ``loss_type``, same seed, same data, same config: equal loss and gradient norm at each of 4 logged
steps (bs 2 x GA 2; GRPO bs 4 x GA 2 with 4 generations of 8 tokens).

GRPO rows give the zoo trainer TRL's ``loss_type`` and no zoo ``loss_type``: it takes the zoo loss declared
equal. A row that sets one of TRL's options is also checked to change TRL's own run (against the same run
without the option), so an option dropped on both sides could not pass. Rows with ``use_vllm`` run TRL's
importance-sampling code with vLLM's engine replaced by a ``rollout_func`` that reports sampler log-probs
(``trl_runs.sampled_rollout``; vLLM is not installed here), on both sides and in the run without the option.
"""

from __future__ import annotations

import pytest
from conftest import assert_same_steps, make_trainer, train_steps
from trl_runs import KINDS, NoVLLMEngine, load, sampled_rollout

from swift_zoo.integrations.trl import TRL_EQUIVALENTS

COMPARED = [row for row in TRL_EQUIVALENTS if row.compared]
#: TRL options a row may set on top of its loss type (the rest of a row's config is the setting itself)
OPTIONS = frozenset({
    "f_divergence_type", "f_alpha_divergence_coef", "ld_alpha", "use_weighting", "off_policy_mask_threshold",
    "top_entropy_quantile", "entropy_coef", "use_vllm", "vllm_importance_sampling_mode",
    "vllm_importance_sampling_clip_min", "vllm_importance_sampling_clip_max",
})


def row_id(row) -> str:
    config = "-".join(f"{k}={v}" for k, v in row.trl_config.items())
    return f"{row.trainer}-{row.trl_loss_type}-{row.zoo_loss}" + (f"-{config}" if config else "")


@pytest.fixture(scope="module")
def trl_cache() -> dict:
    """TRL runs by configuration, shared by the rows of this module (a row's run without its option is often
    another row's run)."""
    return {}


@pytest.fixture
def runner(model_dir, tmp_path, monkeypatch):
    from trl.trainer import grpo_trainer

    monkeypatch.setattr(grpo_trainer, "VLLMGeneration", NoVLLMEngine)

    def run(row, config: dict, *, zoo: dict | None, sampled: bool, name: str):
        kwargs = {"trainer_kwargs": {"rollout_func": sampled_rollout}} if sampled else {}
        trainer = make_trainer(row.trainer, model_dir, tmp_path / name, zoo=zoo, **kwargs, **config)
        return trainer, train_steps(trainer)

    return run


def trl_config(row) -> dict:
    if "loss_type" not in load(KINDS[row.trainer][2]).__dataclass_fields__:  # ORPOConfig: one loss
        return dict(row.trl_config)
    loss_type = [row.trl_loss_type] if row.trainer == "DPOTrainer" else row.trl_loss_type
    return {"loss_type": loss_type, **row.trl_config}


def cached_trl_run(row, config: dict, sampled: bool, runner, cache: dict, name: str) -> list[dict]:
    key = (row.trainer, repr(sorted(config.items())), sampled)
    if key not in cache:
        cache[key] = runner(row, config, zoo=None, sampled=sampled, name=name)[1]
    return cache[key]


@pytest.mark.parametrize("row", COMPARED, ids=[row_id(r) for r in COMPARED])
def test_zoo_trainer_equals_trl_per_step(row, runner, trl_cache):
    config = trl_config(row)
    sampled = bool(row.trl_config.get("use_vllm"))
    trl_run = cached_trl_run(row, config, sampled, runner, trl_cache, "trl")
    zoo = {"loss_type": row.zoo_loss, "loss_kwargs": dict(row.zoo_kwargs)}
    if row.trainer == "GRPOTrainer":  # the zoo loss taken from GRPOConfig.loss_type
        zoo.pop("loss_type")
    else:
        config.pop("loss_type", None)  # the other trainers refuse a TRL loss_type
    trainer, zoo_run = runner(row, config, zoo=zoo, sampled=sampled, name="zoo")
    assert trainer.zoo_loss.name == row.zoo_loss
    assert_same_steps(zoo_run, trl_run)
    assert zoo_run[-1]["loss"] != trl_run[0]["loss"] or row.trainer == "GRPOTrainer"  # the runs really trained

    options = set(row.trl_config) & OPTIONS
    if options:  # the option changes TRL's own run on this data
        plain = {k: v for k, v in trl_config(row).items() if k not in options}
        without = cached_trl_run(row, plain, sampled, runner, trl_cache, "trl-plain")
        gaps = [abs(a[key] - b[key]) / max(abs(b[key]), 1e-6) for a, b in zip(trl_run, without)
                for key in ("loss", "grad_norm")]
        assert max(gaps) > 1e-4, f"{sorted(options)} left TRL's run unchanged: {gaps}"


def test_every_equivalent_names_a_registered_zoo_loss():
    import swift_zoo

    for row in TRL_EQUIVALENTS:
        swift_zoo.get_loss(row.zoo_loss)
