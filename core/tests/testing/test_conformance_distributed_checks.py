"""The distributed-capability checks: the class's record is the spec's, and declared FSDP2 support holds."""

from __future__ import annotations

import pytest
import torch
from conformance_broken_optimizers import ShardNormalisedSgd, TinyAdam, WholeNormalisedSgd

import swift_zoo
from swift_zoo import DistributedCapability, OptimizerSpec, Support, testing
from swift_zoo._registry import REGISTRY
from swift_zoo.testing import CheckSkipped
from swift_zoo.testing._spawn import gloo_unavailable_reason

needs_gloo = pytest.mark.skipif(gloo_unavailable_reason() is not None, reason=f"{gloo_unavailable_reason()}")


@needs_gloo
def test_fsdp2_check_fails_on_a_rule_computed_on_shards():
    with pytest.raises(swift_zoo.ConformanceError) as caught:
        testing.check_fsdp2_equivalence(ShardNormalisedSgd)
    message = str(caught.value)
    assert message.startswith("check_fsdp2_equivalence failed for ShardNormalisedSgd: expected one process's")
    assert "within 1e-06 normwise after 4 steps on 2 FSDP2 ranks" in message
    assert "MatrixOwners" in message


@needs_gloo
def test_fsdp2_check_passes_when_the_same_rule_uses_whole_sums():
    assert "within" in testing.check_fsdp2_equivalence(WholeNormalisedSgd)


def test_fsdp2_check_skips_an_optimizer_that_claims_nothing():
    with pytest.raises(CheckSkipped, match="declares FSDP2 no record"):
        testing.check_fsdp2_equivalence(torch.optim.AdamW)  # a plain torch optimizer carries no record


def test_fsdp2_check_skips_untested_support():
    class Untested(ShardNormalisedSgd):
        distributed = DistributedCapability(fsdp2=Support("untested", "not yet"))

    with pytest.raises(CheckSkipped, match="declares FSDP2 'untested'"):
        testing.check_fsdp2_equivalence(Untested)


def test_distributed_record_of_a_registered_zoo_optimizer_is_its_spec():
    assert "class and spec agree: ddp supported, fsdp2 supported" in testing.check_distributed_record("adamw")


def test_distributed_record_mismatch_fails():
    spec = OptimizerSpec("mismatched_sgd", WholeNormalisedSgd, summary="record differs from the class's",
                         distributed=DistributedCapability(ddp=Support("supported", "tested")))
    REGISTRY.register("optimizer", spec)
    try:
        with pytest.raises(swift_zoo.ConformanceError) as caught:
            testing.check_distributed_record("mismatched_sgd")
    finally:
        REGISTRY.unregister("optimizer", "mismatched_sgd")
    message = str(caught.value)
    assert "expected WholeNormalisedSgd.distributed to equal the spec's record (ddp supported, fsdp2 untested" in message
    assert "found ddp supported, fsdp2 supported" in message


def test_distributed_record_skips_an_unregistered_class():
    with pytest.raises(CheckSkipped, match="not a registered optimizer"):
        testing.check_distributed_record(TinyAdam)
