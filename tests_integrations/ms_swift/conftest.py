"""Shared pieces of the ms-swift integration tests: one tiny model for the session, in-process runs.

Every training run goes through ms-swift's own Python entries (``swift.pipelines.sft_main`` /
``rlhf_main``, what ``swift sft`` / ``swift rlhf`` call) in this process, on the tiny Llama built
offline by ``examples/ms_swift/tiny.py``: 4 steps, float32, seed 42, logging every step.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest

pytest.importorskip("swift.pipelines", reason="needs ms-swift 4.6 (nox -s ms_swift installs it)")

ROOT = Path(__file__).resolve().parents[2]


def _load_tiny():
    spec = importlib.util.spec_from_file_location("ms_swift_tiny", ROOT / "examples" / "ms_swift" / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load_tiny()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``tiny_run(command, *flags, data="sft")`` -> ``[(loss, grad_norm), ...]`` of the 4 logged steps."""
    from swift.pipelines import rlhf_main, sft_main

    from swift_zoo.integrations.ms_swift import external_plugin_path

    model_dir, data = tiny.build(tmp_path_factory.mktemp("tiny"))
    runs = tmp_path_factory.mktemp("runs")

    def run(command: str, *flags: str, data_name: str = "sft", plugin: bool = True, batch: int = 2,
            accumulation: int = 2, env: dict[str, str] | None = None) -> list[tuple[float, float]]:
        argv = [
            "--model", str(model_dir), *tiny.MODEL_ARGS, "--dataset", str(data[data_name]),
            "--tuner_type", "full", "--torch_dtype", "float32", "--max_steps", "4",
            "--per_device_train_batch_size", str(batch), "--gradient_accumulation_steps", str(accumulation),
            "--logging_steps", "1", "--learning_rate", "1e-3", "--report_to", "none", "--save_strategy", "no",
            "--split_dataset_ratio", "0", "--dataloader_num_workers", "0", "--dataset_num_proc", "1",
            "--seed", "42", "--output_dir", str(runs / f"run{len(list(runs.iterdir()))}"), *flags,
        ]
        if plugin:
            argv += ["--external_plugins", str(external_plugin_path())]
        main = sft_main if command == "sft" else rlhf_main
        # set and removed here, not with monkeypatch: datasets' map may replace the os.environ object
        # (datasets/arrow_dataset.py:3620), and monkeypatch's undo would then miss the live one
        os.environ.update(env or {})
        try:
            result = main(argv)
        finally:
            for key in env or {}:
                os.environ.pop(key, None)
        steps = [(log["loss"], log["grad_norm"]) for log in result["log_history"] if "loss" in log]
        assert len(steps) == 4 and all(math.isfinite(v) for step in steps for v in step), steps
        run.last_logs = result["log_history"]
        return steps

    run.model_dir, run.data = model_dir, data
    return run


@pytest.fixture(scope="session")
def same_steps():
    """``same_steps(found, expected)``: loss and grad_norm equal at every logged step, to float32 rounding."""

    def check(found, expected, rel: float = 2e-6) -> None:
        assert len(found) == len(expected)
        for step, ((loss, norm), (loss_ref, norm_ref)) in enumerate(zip(found, expected), start=1):
            assert loss == pytest.approx(loss_ref, rel=rel, abs=1e-7), f"step {step}: loss {loss} != {loss_ref}"
            assert norm == pytest.approx(norm_ref, rel=rel, abs=1e-7), f"step {step}: grad_norm {norm} != {norm_ref}"

    return check
