"""Building the zoo and TRL trainers on the tiny model: shared by the tests (through ``conftest``) and by the
multi-process runner ``multiprocess_runs.py``, which runs outside pytest.

Every run: 4 optimizer steps, seed 42, ``use_cpu=True``, float32 (``bf16=False``: TRL configs default to bf16
autocast, under which any two formulations differ at bf16 rounding, about 1e-3), no checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "trl"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import tiny  # noqa: E402

STEPS = 4


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


def uneven_sft():
    """SFT rows whose completions have 1 to 4 words: micro-batches (and ranks) hold different token counts."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": tiny.prompt(w), "completion": tiny.answer(" ".join([w] * (1 + i % 4)))}
                              for i, w in enumerate(tiny.WORDS)])


ZOO = "swift_zoo.integrations.trl"
KINDS = {  # kind: (TRL trainer, zoo trainer, config class as "module:name", dataset builder, per-kind arguments)
    "SFTTrainer": ("trl:SFTTrainer", f"{ZOO}:ZooSFTTrainer", "trl:SFTConfig", tiny.sft_dataset, {}),
    "DPOTrainer": ("trl:DPOTrainer", f"{ZOO}:ZooDPOTrainer", "trl:DPOConfig", tiny.preference_dataset, {}),
    "KTOTrainer": ("trl:KTOTrainer", f"{ZOO}:ZooKTOTrainer", "trl:KTOConfig", tiny.unpaired_dataset, {}),
    "GRPOTrainer": ("trl:GRPOTrainer", f"{ZOO}:ZooGRPOTrainer", "trl:GRPOConfig", tiny.prompt_dataset,
                    {"num_generations": 4, "max_completion_length": 8, "per_device_train_batch_size": 4}),
    "CPOTrainer": ("trl.experimental.cpo:CPOTrainer", f"{ZOO}.experimental:ZooCPOTrainer",
                   "trl.experimental.cpo:CPOConfig", tiny.preference_dataset, {}),
    "ORPOTrainer": ("trl.experimental.orpo:ORPOTrainer", f"{ZOO}.experimental:ZooORPOTrainer",
                    "trl.experimental.orpo:ORPOConfig", tiny.preference_dataset, {}),
}


def load(path: str):
    """``"module:name"`` imported."""
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def make_trainer(kind: str, model_dir: Path, output_dir: Path, *, zoo: dict | None = None, dataset=None,
                 ref: bool = True, trainer_class: type | None = None, trainer_kwargs: dict | None = None, **config):
    """A TRL trainer (``zoo is None``, TRL's own loss) or its zoo trainer (``zoo`` = ``zoo_config``) on the tiny
    model, with the test's common arguments plus ``config``.

    :param trainer_class: instead of the class named in ``KINDS`` (a recording subclass, say).
    :param trainer_kwargs: more arguments of the trainer itself (GRPO's ``rollout_func``...).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trl_path, zoo_path, config_path, data, extra = KINDS[kind]
    cls = trainer_class or load(trl_path if zoo is None else zoo_path)
    args = load(config_path)(**common_args(output_dir, **{**extra, **config}))
    kwargs = {"args": args, "train_dataset": dataset if dataset is not None else data(),
              "processing_class": AutoTokenizer.from_pretrained(model_dir), **(trainer_kwargs or {})}
    if zoo is not None:
        kwargs["zoo_config"] = zoo
    if kind == "GRPOTrainer":  # TRL loads the policy (and the reference when beta != 0) from the folder
        return cls(model=str(model_dir), reward_funcs=tiny.word_reward, **kwargs)
    kwargs["model"] = AutoModelForCausalLM.from_pretrained(model_dir)
    if kind in ("DPOTrainer", "KTOTrainer") and ref:
        kwargs["ref_model"] = AutoModelForCausalLM.from_pretrained(model_dir)
    return cls(**kwargs)
