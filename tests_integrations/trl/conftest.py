"""Shared pieces of the TRL tests: the tiny model folder (built once), one runner, step-by-step comparison.

Every run: 4 optimizer steps, seed 42, ``use_cpu=True``, float32 (``bf16=False``: TRL configs default to bf16
autocast, under which any two formulations differ at bf16 rounding, about 1e-3), no checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="the TRL integration tests need TRL (nox -s trl installs it)")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "trl"
sys.path.insert(0, str(EXAMPLES))

import tiny  # noqa: E402

STEPS = 4


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tiny.build(tmp_path_factory.mktemp("tiny"))


def common_args(output_dir: Path, **overrides) -> dict:
    args = {"output_dir": str(output_dir), "max_steps": STEPS, "logging_steps": 1, "learning_rate": 1e-3,
            "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "seed": 42, "use_cpu": True,
            "report_to": "none", "save_strategy": "no", "bf16": False, "dataloader_num_workers": 0, "disable_tqdm": True}
    args.update(overrides)
    return args


def train_steps(trainer) -> list[dict]:
    """Train; the per-step log entries (those with a loss)."""
    trainer.train()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def assert_same_steps(zoo: list[dict], trl: list[dict], *, rtol: float = 2e-5) -> None:
    """Equal loss and gradient norm at every logged step (float32 rounding apart)."""
    assert len(zoo) == len(trl) == STEPS, (len(zoo), len(trl))
    for step, (a, b) in enumerate(zip(zoo, trl), start=1):
        for key in ("loss", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=rtol, abs=1e-7), (
                f"step {step} {key}: zoo {a[key]!r} vs TRL {b[key]!r}")


KINDS = {  # kind: (TRL trainer, zoo trainer, config class, dataset builder, per-kind arguments)
    "SFTTrainer": ("SFTTrainer", "ZooSFTTrainer", "SFTConfig", tiny.sft_dataset, {}),
    "DPOTrainer": ("DPOTrainer", "ZooDPOTrainer", "DPOConfig", tiny.preference_dataset, {}),
    "KTOTrainer": ("KTOTrainer", "ZooKTOTrainer", "KTOConfig", tiny.unpaired_dataset, {}),
    "GRPOTrainer": ("GRPOTrainer", "ZooGRPOTrainer", "GRPOConfig", tiny.prompt_dataset,
                    {"num_generations": 4, "max_completion_length": 8, "per_device_train_batch_size": 4}),
}


def make_trainer(kind: str, model_dir: Path, output_dir: Path, *, zoo: dict | None = None,
                 dataset=None, ref: bool = True, **config):
    """A TRL trainer (``zoo is None``, TRL's own loss) or its zoo trainer (``zoo`` = ``zoo_config``) on the tiny
    model, with the test's common arguments plus ``config``."""
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import swift_zoo.integrations.trl as zoo_trl

    trl_name, zoo_name, config_name, data, extra = KINDS[kind]
    cls = getattr(trl, trl_name) if zoo is None else getattr(zoo_trl, zoo_name)
    args = getattr(trl, config_name)(**common_args(output_dir, **{**extra, **config}))
    kwargs = {"args": args, "train_dataset": dataset if dataset is not None else data(),
              "processing_class": AutoTokenizer.from_pretrained(model_dir)}
    if zoo is not None:
        kwargs["zoo_config"] = zoo
    if kind == "GRPOTrainer":  # TRL loads the policy (and the reference when beta != 0) from the folder
        return cls(model=str(model_dir), reward_funcs=tiny.word_reward, **kwargs)
    kwargs["model"] = AutoModelForCausalLM.from_pretrained(model_dir)
    if kind in ("DPOTrainer", "KTOTrainer") and ref:
        kwargs["ref_model"] = AutoModelForCausalLM.from_pretrained(model_dir)
    return cls(**kwargs)
