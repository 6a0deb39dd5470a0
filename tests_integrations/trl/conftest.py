"""Shared pieces of the TRL tests: the tiny model folder (built once), the trainer builders of ``trl_runs``,
step-by-step comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl", reason="the TRL integration tests need TRL (nox -s trl installs it)")

from trl_runs import EXAMPLES, KINDS, STEPS, common_args, make_trainer, tiny, train_steps, uneven_sft  # noqa: F401


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tiny.build(tmp_path_factory.mktemp("tiny"))


def assert_same_steps(zoo: list[dict], trl: list[dict], *, rtol: float = 2e-5) -> None:
    """Equal loss and gradient norm at every logged step (float32 rounding apart)."""
    assert len(zoo) == len(trl) == STEPS, (len(zoo), len(trl))
    for step, (a, b) in enumerate(zip(zoo, trl), start=1):
        for key in ("loss", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=rtol, abs=1e-7), (
                f"step {step} {key}: zoo {a[key]!r} vs TRL {b[key]!r}")
