"""Two processes equal one: the zoo TRL trainers under DDP (``torchrun``, gloo on CPU, ``use_cpu=True``) with
each rank holding a different number of loss units give the loss, gradient norm and final parameters of one
process on the whole batch, for a token loss (SFT ``cross_entropy``, and ``fused_linear_cross_entropy``, whose
LM-head gradient comes from outside the model's forward), a pair loss (DPO ``dpo``) and GRPO
token-normalised (``dapo``) and sequence-normalised (``grpo``, with the reference KL) with
``steps_per_generation = 4`` over accumulation windows of 2 (two windows per generation batch, the second
off-policy). The control runs the SFT case with the pre-fix normalisation (each rank's own count, no factor for
DDP's average) and does not equal the single process. How the runs are set up: ``multiprocess_runs.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import STEPS

RUNNER = Path(__file__).with_name("multiprocess_runs.py")
EXACT = ["sft", "sft_fused", "dpo", "grpo_dapo", "grpo_grpo"]
CONTROL = "sft_local_count"
TIMEOUT_S = 600


def _launch(command: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    return subprocess.Popen(command, cwd=RUNNER.parent, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def runs(model_dir, tmp_path_factory) -> Path:
    """Run every case once in one process and once in two (at the same time); the folder of their results."""
    out = tmp_path_factory.mktemp("multiprocess")
    common = [str(RUNNER), "--model", str(model_dir), "--out", str(out)]
    launches = {
        "one process": _launch([sys.executable, *common], out / "single.log"),
        "two processes": _launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                  "2", *common], out / "torchrun.log"),
    }
    failed = []
    for name, process in launches.items():
        try:
            code = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = "timeout"
        if code != 0:
            log = (out / ("single.log" if name == "one process" else "torchrun.log")).read_text()
            failed.append(f"{name} ({code}):\n{log[-4000:]}")
    assert not failed, "\n".join(failed)
    return out


def _result(out: Path, case: str, world: int) -> tuple[dict, dict[str, torch.Tensor]]:
    return (json.loads((out / f"{case}-w{world}.json").read_text()),
            torch.load(out / f"{case}-w{world}.pt", weights_only=True))


@pytest.mark.parametrize("case", EXACT)
def test_two_processes_equal_one(case, runs):
    (single, single_params), (multi, multi_params) = _result(runs, case, 1), _result(runs, case, 2)
    assert len(single["steps"]) == len(multi["steps"]) == STEPS
    for step, (one, two) in enumerate(zip(single["steps"], multi["steps"]), start=1):
        for key in ("loss", "grad_norm"):
            assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-7), (
                f"step {step} {key}: 2 processes {two[key]!r} vs 1 process {one[key]!r}")
    gap = max((multi_params[k] - single_params[k]).abs().max().item() for k in single_params)
    assert gap < 2e-5, f"parameters after {STEPS} steps differ by up to {gap:.3g}"


@pytest.mark.parametrize("case", EXACT)
def test_the_ranks_held_different_numbers_of_units(case, runs):
    # each count is one accumulation window's units on one rank; the ranks' counts add up to the single process's
    single, multi = _result(runs, case, 1)[0], _result(runs, case, 2)[0]
    rank0, rank1 = multi["local_counts"]
    assert [a + b for a, b in zip(rank0, rank1)] == single["local_counts"][0]
    assert any(a != b for a, b in zip(rank0, rank1)), (rank0, rank1)


def test_control_each_ranks_own_count_is_not_exact(runs):
    # The same SFT run with what the normalisation would be without the rank gather: a mean over each rank's own
    # tokens, averaged by DDP. The ranks hold different token counts, so that is a different objective.
    (single, single_params), (local, local_params) = _result(runs, "sft", 1), _result(runs, CONTROL, 2)
    gaps = [abs(a["grad_norm"] - b["grad_norm"]) / b["grad_norm"] for a, b in zip(local["steps"], single["steps"])]
    assert min(gaps) > 1e-3, gaps
    assert max((local_params[k] - single_params[k]).abs().max().item() for k in single_params) > 1e-3
