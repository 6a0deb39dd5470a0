"""Owner planning, the exchange helpers on one process, and loud refusals of wrappers a method cannot serve.

The multi-process behaviour (gather/scatter over gloo, FSDP2 equality, resume) is in ``tests_distributed``.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from swift_zoo import DistributedCapability, Support, UnsupportedShardingError
from swift_zoo.optim import (
    MatrixOwners,
    UntestedShardingWarning,
    ZooOptimizer,
    communication_ledger,
    placeholder,
    plan_owners,
    row_range,
    sharded_zeros,
    sum_over_shards,
)


@pytest.mark.parametrize("rows", [0, 1, 3, 5, 12, 13, 18, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
def test_row_range_is_torch_chunk(rows, world):
    chunks = [len(c) for c in torch.arange(rows).chunk(world)] if rows else []
    chunks += [0] * (world - len(chunks))
    assert [row_range(rows, world, r)[1] - row_range(rows, world, r)[0] for r in range(world)] == chunks
    assert [row_range(rows, world, r)[0] for r in range(world)] == [sum(chunks[:r]) for r in range(world)]


def test_plan_owners_is_largest_first_to_the_least_loaded_rank():
    # 40 -> rank 0; 30 -> rank 1; 20 -> rank 1 (30 < 40); 10 -> rank 0 (40 < 50)
    assert plan_owners([10, 40, 30, 20], 2) == [0, 0, 1, 1]
    loads = [0, 0]
    plan_owners([10, 40, 30, 20], 2, loads)
    assert loads == [50, 50]


def test_plan_owners_balances_within_the_largest_matrix():
    generator = torch.Generator().manual_seed(0)
    numels = torch.randint(1, 1000, (57,), generator=generator).tolist()
    loads = [0] * 4
    owners = plan_owners(numels, 4, loads)
    assert max(loads) - min(loads) <= max(numels)
    assert [sum(n for n, o in zip(numels, owners) if o == r) for r in range(4)] == loads
    assert owners == plan_owners(numels, 4)  # deterministic: every rank computes the same plan


def test_later_assignments_do_not_move_earlier_ones():
    loads = [0, 0]
    first = plan_owners([100, 50], 2, loads)
    second = plan_owners([70], 2, loads)
    assert first == [0, 1] and second == [1] and loads == [100, 120]


def test_one_process_exchange_is_the_identity_and_touches_no_process_group():
    params = [torch.randn(5, 3), torch.randn(4)]
    owners = MatrixOwners()
    owners.assign(params)
    assert [owners.owner_of(p) for p in params] == [None, None]
    assert all(owners.owns(p) for p in params)
    inputs = [p * 2 for p in params]
    with communication_ledger() as ledger:
        assert all(a is b for a, b in zip(owners.gather(params, inputs), inputs))
        assert all(a is b for a, b in zip(owners.scatter(params, inputs), inputs))
        assert all(a is b for a, b in zip(sum_over_shards(params, inputs), inputs))
    assert ledger.total_bytes == 0 and not ledger.calls
    assert not torch.distributed.is_initialized()


def test_placeholder_and_sharded_zeros_on_one_process():
    marker = placeholder((3, 4), torch.bfloat16)
    assert marker.device.type == "meta" and marker.shape == (3, 4) and marker.dtype == torch.bfloat16
    zeros = sharded_zeros(torch.randn(6, 2), (6,), torch.float64)
    assert zeros.shape == (6,) and zeros.dtype == torch.float64 and not zeros.any()


# ----------------------------------------------------------------------------- refusals
REFUSES_FLAT = DistributedCapability(
    ddp=Support("supported", "tested"),
    zero1_2=Support("refused", "needs whole matrices: use FSDP2 or DDP instead"),
    zero3=Support("refused", "needs whole matrices: use FSDP2 or DDP instead"),
    fsdp1_flat=Support("refused", "needs whole matrices: use FSDP2 or DDP instead"),
)


class WholeMatrixSgd(ZooOptimizer):
    """SGD standing in for a whole-matrix method that refuses flat partitions."""

    name = "whole_matrix_sgd"
    distributed = REFUSES_FLAT

    def __init__(self, params, lr: float = 0.1):
        super().__init__(params, {"lr": lr})

    def _step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(p.grad, alpha=group["lr"])


class ElementwiseSgd(WholeMatrixSgd):
    name = "elementwise_sgd"
    distributed = DistributedCapability(ddp=Support("supported", "tested"))
    elementwise = True


def _zero3_param() -> torch.nn.Parameter:
    param = torch.nn.Parameter(torch.empty(0))  # what ZeRO-3 leaves: an empty tensor with the ds_* attributes
    param.ds_id, param.ds_numel, param.ds_shape = 7, 12, (3, 4)
    return param


def test_zero3_partitioned_parameters_are_refused_at_construction():
    with pytest.raises(UnsupportedShardingError) as caught:
        WholeMatrixSgd([{"params": [_zero3_param()], "param_names": ["layer.weight"]}])
    message = str(caught.value)
    assert "optimizer 'whole_matrix_sgd'" in message and "'layer.weight'" in message
    assert "DeepSpeed ZeRO-3 (partitioned parameters: ds_id / ds_numel)" in message
    assert "use FSDP2 or DDP instead" in message


def test_fsdp1_flat_parameters_are_refused_at_construction():
    flat = torch.nn.Parameter(torch.randn(10))
    flat._is_flat_param = True
    with pytest.raises(UnsupportedShardingError, match=r"FSDP1 flat parameters \(use_orig_params=False\)"):
        WholeMatrixSgd([flat])


def test_zero1_2_flat_partitions_are_refused_at_the_first_step_before_any_update():
    matrix = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = WholeMatrixSgd([{"params": [matrix], "role": "hidden_matrix"}])
    flat = torch.nn.Parameter(matrix.detach().reshape(-1).clone())  # what DeepSpeed stage 1/2 swaps in
    flat.grad = torch.ones_like(flat)
    optimizer.param_groups[0]["params"] = [flat]
    before = flat.detach().clone()
    with pytest.raises(UnsupportedShardingError, match=r"DeepSpeed ZeRO-1/2 \(flat fp32 partitions"):
        optimizer.step()
    assert torch.equal(flat.detach(), before)


def test_an_undeclared_wrapper_warns_once_and_steps():
    flat = torch.nn.Parameter(torch.randn(10))
    flat._is_flat_param = True
    with pytest.warns(UntestedShardingWarning, match="has not declared support for FSDP1 flat parameters"):
        optimizer = ElementwiseSgd([flat])
    flat.grad = torch.ones_like(flat)
    before = flat.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntestedShardingWarning)
        optimizer.step()
    assert torch.equal(flat.detach(), before - 0.1)
