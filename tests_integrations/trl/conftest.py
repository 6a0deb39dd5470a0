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
