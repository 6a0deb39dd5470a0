"""The zoo's element-wise optimizers on DTensor ``Shard(0)`` parameters (FSDP2's layout) equal one process.

Two gloo ranks; each steps the same parameters whole and sharded and compares. Whole-tensor sums (trust ratio,
update RMS, correction norm, Prodigy's d, cautious counts) are all-reduced per tensor, so the sharded run is the
one-process run to float rounding (``_dtensor_cases``).
"""

from __future__ import annotations

import pytest
from _dtensor_cases import CASES, CONTROL
from _launch import run_on_ranks

WORLD_SIZE = 2
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def rank_results(require_gloo):
    return run_on_ranks("_dtensor_cases:run", world_size=WORLD_SIZE, timeout=600)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_sharded_step_equals_one_process(case_id, rank_results):
    for rank in range(WORLD_SIZE):
        result = rank_results[rank][case_id]
        if "error" in result:
            pytest.fail(f"{case_id} raised on rank {rank}:\n{result['error']}")
        assert result["max_diff"] < TOLERANCE, f"{case_id}: sharded vs one process max |diff| {result['max_diff']:.3g}"


def test_control_norms_of_the_shard_alone_differ(rank_results):
    """LAMB stepped on each rank's rows as plain tensors (trust ratio from the shard): the comparison can fail."""
    for rank in range(WORLD_SIZE):
        assert rank_results[rank][CONTROL]["max_diff"] > 100 * TOLERANCE
