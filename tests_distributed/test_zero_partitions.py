"""Element-wise optimizers on DeepSpeed-style flat partitions equal one process; whole-matrix ones refuse them.

DeepSpeed's ZeRO optimizers (stages 1 and 2, and stage 3's fp32 partitions) do not hand the wrapped optimizer
the model's parameters: each param group's parameters are flattened into one fp32 buffer, padded to a multiple
of the world size, and every rank's optimizer gets one flat partition of it as the group's only parameter,
whose gradient is the same partition of the flattened (averaged) gradients. DeepSpeed is not installed here,
so this simulates it in one process: ``W`` optimizers, one per simulated rank, each stepping its partitions,
the partitions written back into the model after each step (DeepSpeed's all-gather).

Element-wise methods must leave one process's parameters: bitwise, except that torch's fused CPU AdamW kernel
computes the last ``numel % vector width`` elements of every tensor it is given in scalar code that rounds
differently (see ``swift_optim_zoo._shard_aligned``); a flat partition ends elsewhere than the tensors it
holds, so ``adamw`` / ``lora_plus`` with ``fused=True`` (their CPU default) agree within :data:`FUSED_RTOL`, and
with ``fused=False`` bitwise. Methods whose record refuses ZeRO-1/2 -- whole-matrix methods, and element-wise ones
with whole-tensor sums (a partition cuts and mixes tensors) -- must refuse a flat partition in a matrix-role group
before changing anything.
"""

from __future__ import annotations

import pytest
import torch
from _optim_cases import CONTROL, OptimizerCase, optimizer_cases
from _tiny_lm import build_block_lm, lm_batch

import swift_zoo
from swift_zoo import UnsupportedShardingError

STEPS = 3
FUSED_RTOL = 1e-6
CASES = [c for c in optimizer_cases() if c.name != CONTROL and c.load_error is None]


def _elementwise(case: OptimizerCase) -> bool:
    return bool(getattr(swift_zoo.get_optimizer(case.name), "elementwise", False))


def _refused(case: OptimizerCase) -> bool:
    entry = next(e for e in swift_zoo.list_optimizers() if e.qualified_name == case.name)
    return entry.spec.distributed.zero1_2.refused


def _loss(model: torch.nn.Module, step: int) -> torch.Tensor:
    batch = lm_batch(3, seed=900 + step)
    return swift_zoo.build_loss("cross_entropy")(model(batch.input_ids), batch.labels)


def _build(case: OptimizerCase, model: torch.nn.Module, extra: dict) -> torch.optim.Optimizer:
    optimizer = swift_zoo.build_optimizer(case.name, model, **{**case.kwargs, **extra})
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()
    return optimizer


def _one_process(case: OptimizerCase, extra: dict) -> dict[str, torch.Tensor]:
    model = build_block_lm()
    optimizer = _build(case, model, extra)
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        _loss(model, step).backward()
        optimizer.step()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _partitioned(case: OptimizerCase, world: int, extra: dict) -> dict[str, torch.Tensor]:
    model = build_block_lm()
    optimizers, groups = [], []
    for rank in range(world):
        optimizer = _build(case, model, extra)
        if rank == 0:
            groups = [list(group["params"]) for group in optimizer.param_groups]
        optimizers.append(optimizer)
    sizes = [sum(p.numel() for p in params) for params in groups]
    padded = [-(-size // world) * world for size in sizes]
    partitions = [[torch.nn.Parameter(torch.zeros(padded[g] // world)) for g in range(len(groups))]
                  for _ in range(world)]
    for rank, optimizer in enumerate(optimizers):
        for g, group in enumerate(optimizer.param_groups):
            group["params"] = [partitions[rank][g]]

    def flat(tensors: list[torch.Tensor], size: int) -> torch.Tensor:
        joined = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        return torch.cat([joined, joined.new_zeros(size - joined.numel())])

    for g, params in enumerate(groups):  # fp32 master partitions start from the model
        for rank, chunk in enumerate(flat(params, padded[g]).chunk(world)):
            partitions[rank][g].data.copy_(chunk)
    for step in range(STEPS):
        model.zero_grad(set_to_none=True)
        _loss(model, step).backward()
        for g, params in enumerate(groups):
            grads = flat([p.grad if p.grad is not None else torch.zeros_like(p) for p in params], padded[g])
            for rank, chunk in enumerate(grads.chunk(world)):
                partitions[rank][g].grad = chunk.clone()
        for optimizer in optimizers:
            optimizer.step()
        with torch.no_grad():  # all-gather the partitions into the model's parameters
            for g, params in enumerate(groups):
                whole = torch.cat([partitions[rank][g].detach() for rank in range(world)])
                offset = 0
                for p in params:
                    p.copy_(whole[offset:offset + p.numel()].view_as(p))
                    offset += p.numel()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("case_id", [c.case_id for c in CASES if _elementwise(c) and not _refused(c)])
def test_element_wise_methods_on_flat_partitions_equal_one_process(case_id, world):
    case = next(c for c in CASES if c.case_id == case_id)
    torch_fused = case.name.endswith((":adamw", ":lora_plus"))
    variants = [{"fused": False}, {}] if torch_fused else [{}]
    for extra in variants:
        got, want = _partitioned(case, world, extra), _one_process(case, extra)
        if torch_fused and not extra:  # torch's fused CPU kernel: its scalar tail rounds differently
            worst = max(float((got[n] - want[n]).norm() / want[n].norm()) for n in want)
            assert worst <= FUSED_RTOL, f"{case_id} (fused) on {world} partitions differs by {worst:.3g}"
            continue
        differing = sorted(n for n in want if not torch.equal(got[n], want[n]))
        assert not differing, f"{case_id} {extra} on {world} flat partitions differs from one process: {differing}"


@pytest.mark.parametrize("case_id", [c.case_id for c in CASES if not _elementwise(c) or _refused(c)])
def test_methods_that_refuse_flat_partitions_raise_before_any_update(case_id):
    case = next(c for c in CASES if c.case_id == case_id)
    if not _refused(case):
        pytest.skip(f"{case.name} does not declare ZeRO-1/2 refused")
    model = build_block_lm()
    optimizer = _build(case, model, {})
    for group in optimizer.param_groups:
        flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in group["params"]]))
        flat.grad = torch.ones_like(flat)
        group["params"] = [flat]
    before = [group["params"][0].detach().clone() for group in optimizer.param_groups]
    with pytest.raises(UnsupportedShardingError) as caught:
        optimizer.step()
    message = str(caught.value)
    assert f"optimizer '{case.name.split(':')[-1]}'" in message and "DeepSpeed ZeRO-1/2" in message
    assert "use" in message and "FSDP2" in message, f"the message does not say what to use instead: {message}"
    assert all(torch.equal(group["params"][0].detach(), b) for group, b in zip(optimizer.param_groups, before))
