"""The HF Trainer with a zoo optimizer and an FSDP2 config, on CPU: what accelerate does with it.

accelerate 1.15 enables FSDP only from a multi-accelerator distributed type, so with ``use_cpu=True`` and gloo
the Trainer's FSDP config is ignored without an error and the run is DDP (``MULTI_CPU``). This test states
that, so it fails the day accelerate applies FSDP on CPU -- then it should assert equality with one process,
as ``test_fsdp_optimizers.py`` does for the optimizer on ``fully_shard``-ed models.
"""

from __future__ import annotations

import pytest
from _launch import run_on_ranks

pytest.importorskip("transformers", reason="the HF Trainer path needs transformers (the [hf] extra)")
pytest.importorskip("accelerate", reason="the HF Trainer path needs accelerate (the [hf] extra)")


@pytest.fixture(scope="module")
def ranks(require_gloo):
    return run_on_ranks("_hf_cases:run", world_size=2, timeout=300)


def test_zoo_trainer_trains_muon_with_an_fsdp2_config_on_cpu(ranks):
    assert [r["optimizer"] for r in ranks] == ["Muon", "Muon"]


def test_accelerate_ignores_fsdp_on_cpu_and_runs_ddp(ranks):
    for result in ranks:
        assert result["distributed_type"] == "DistributedType.MULTI_CPU", (
            f"accelerate now applies {result['distributed_type']} on CPU: test ZooTrainer + muon under FSDP2 "
            "against one process and update docs/distributed.md")
        assert result["dtensor_params"] == 0, "parameters are DTensors: FSDP2 was applied"
