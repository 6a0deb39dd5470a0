"""8-bit AdamW on FSDP2 row shards with the whole tensor's quantisation blocks: bitwise one process's step.

One process cuts a tensor's flattened elements into blocks of ``block_size`` and quantises each block against its
absolute maximum. Under ``Shard(0)`` rank ``r`` holds the flat elements ``[start, stop)`` of its rows
(:class:`FlatShard`), which need not begin or end on a block boundary. Each rank keeps the codes of its own
elements and the absmax of every block they touch, so a block cut by a shard boundary has its absmax on both
ranks. A step:

1. dequantises, updates the moments and the parameter element by element (each element with its block's absmax:
   :func:`~swift_optim_zoo.adamw_8bit.quantization.dequantize_blockwise`'s arithmetic, element for element);
2. takes the new moments' partial absmax of every touched block; interior blocks are complete, and the first and
   last touched block of each rank get the exact max over every rank holding part of them from one
   ``all_gather`` of four numbers per quantised tensor and rank (a max does not depend on the order);
3. requantises its elements against those absmax: one process's codes.

Checkpoints (``torch.distributed.checkpoint``) must not depend on where the shard boundaries were:
:func:`export_state` writes each tensor's codes as a ``Shard(0)`` DTensor in the parameter's shape and its absmax
whole (the same on every rank: an all-reduce of each rank's blocks with max, at save time only);
:func:`import_state` cuts them for the loading run, whatever its world size, or takes them whole on one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch

from swift_zoo.optim import as_row_sharded, is_dtensor, is_row_sharded, local_tensor, row_range
from swift_zoo.optim._sharding import record_collective

CODE_KEYS = ("exp_avg_codes", "exp_avg_sq_codes")
ABSMAX_KEYS = ("exp_avg_absmax", "exp_avg_sq_absmax")
ABSMAX_MIN = 1e-12  # quantize_blockwise's clamp


@dataclass(frozen=True)
class FlatShard:
    """Rank ``rank``'s part of a row-sharded tensor: flat elements ``[start, stop)`` of the whole, touching blocks
    ``[first_block, stop_block)`` (none when the rank holds no rows)."""

    start: int
    stop: int
    first_block: int
    stop_block: int

    @classmethod
    def of(cls, param: torch.Tensor, block_size: int, rank: int | None = None) -> FlatShard:
        mesh = param.device_mesh
        rows_start, rows_stop = row_range(param.shape[0], mesh.size(), mesh.get_local_rank() if rank is None else rank)
        per_row = param.numel() // param.shape[0] if param.shape[0] else 0
        start, stop = rows_start * per_row, rows_stop * per_row
        if stop == start:
            return cls(start, stop, 0, 0)
        return cls(start, stop, start // block_size, -(-stop // block_size))

    @property
    def blocks(self) -> int:
        return self.stop_block - self.first_block

    def block_index(self, block_size: int, device: torch.device) -> torch.Tensor:
        """For each local element, the index of its block among the touched ones."""
        return torch.arange(self.start, self.stop, device=device) // block_size - self.first_block

    def padded(self, values: torch.Tensor, block_size: int) -> torch.Tensor:
        """``values`` (the local flat elements) placed in zeros ``[blocks, block_size]`` at their block positions."""
        out = values.new_zeros(self.blocks * block_size)
        offset = self.start - self.first_block * block_size
        out[offset:offset + values.numel()] = values
        return out.view(self.blocks, block_size)


def new_quantized_state(param: torch.Tensor, block_size: int, zero_code: int) -> dict[str, torch.Tensor]:
    """Codes of this rank's elements and the absmax of the blocks they touch, for a row-sharded ``param``."""
    shard = FlatShard.of(param, block_size)
    device = local_tensor(param).device
    state: dict[str, torch.Tensor] = {}
    for key in ("exp_avg", "exp_avg_sq"):
        state[f"{key}_codes"] = torch.zeros(shard.stop - shard.start, dtype=torch.uint8, device=device)
        state[f"{key}_absmax"] = torch.zeros(shard.blocks, dtype=torch.float32, device=device)
    state["exp_avg_codes"].fill_(zero_code)
    return state


def sharded_8bit_step(items: list[tuple[torch.Tensor, dict[str, Any], Mapping[str, Any], tuple[float, ...], bool]],
                      maps: Any) -> None:
    """One step of the row-sharded quantised ``(param, state, group, hyper, stochastic_round)`` items (see the
    module docstring); ``maps(device)`` gives ``(signed map, its midpoints, unsigned map, its midpoints)``."""
    from swift_optim_zoo.adamw_8bit.adamw_8bit import stochastic_round_to_bf16

    moments, partials = [], []
    for param, state, group, hyper, rounding in items:
        lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2 = hyper
        size, local = group["block_size"], local_tensor(param)
        shard = FlatShard.of(param, size)
        signed, _, unsigned, _ = maps(local.device)
        index = shard.block_index(size, local.device)
        g = local_tensor(param.grad).reshape(-1).float()
        m = signed[state["exp_avg_codes"].long()] * state["exp_avg_absmax"][index]  # dequantize_blockwise's product
        v = unsigned[state["exp_avg_sq_codes"].long()] * state["exp_avg_sq_absmax"][index]
        m = m + (g - m) * (1 - beta1)
        v = v + (g * g - v) * (1 - beta2)
        updated = local.reshape(-1).float() * (1 - lr * weight_decay) - (m / bc1) / (v.sqrt() / sqrt_bc2 + eps) * lr
        local.copy_((stochastic_round_to_bf16(updated) if rounding else updated).view(local.shape))
        moments.append((shard, index, m, v))
        partials.append([shard.padded(x.abs(), size).amax(dim=-1) for x in (m, v)])
    maxima = _complete_boundary_blocks(items, moments, partials)
    for (param, state, _, _, _), (_, index, m, v), absmax in zip(items, moments, maxima):
        _, signed_bounds, _, unsigned_bounds = maps(local_tensor(param).device)
        for key, values, block_max, bounds in (("exp_avg", m, absmax[0], signed_bounds),
                                               ("exp_avg_sq", v, absmax[1], unsigned_bounds)):
            block_max = block_max.clamp(min=ABSMAX_MIN)
            scaled = values * block_max.reciprocal()[index]  # quantize_blockwise's arithmetic
            state[f"{key}_codes"].copy_(torch.bucketize(scaled, bounds, right=True).to(torch.uint8))
            state[f"{key}_absmax"].copy_(block_max)


def _complete_boundary_blocks(items: list[Any], moments: list[Any],
                              partials: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    """``partials`` (per item, the partial absmax of ``m`` and ``v`` over the touched blocks) with the first and
    last block of each rank replaced by the max over every rank holding part of them: one ``all_gather`` per mesh."""
    import torch.distributed as dist

    by_mesh: dict[int, list[int]] = {}
    for i, (param, *_) in enumerate(items):
        by_mesh.setdefault(id(param.device_mesh), []).append(i)
    for chosen in by_mesh.values():
        mesh = items[chosen[0]][0].device_mesh
        world = mesh.size()
        ends = [part[j] if part.numel() else part.new_zeros(()) for i in chosen for part in partials[i] for j in (0, -1)]
        mine = torch.stack(ends).float()
        everyone = mine.new_empty(world * mine.numel())
        dist.all_gather_into_tensor(everyone, mine, group=mesh.get_group())
        record_collective("all_gather", (world - 1) * mine.numel() * mine.element_size())
        everyone = everyone.view(world, len(chosen), 2, 2)  # rank, item, moment, (first, last)
        for k, i in enumerate(chosen):
            param, _, group, _, _ = items[i]
            shard = moments[i][0]
            if not shard.blocks:
                continue
            for other in range(world):
                theirs = FlatShard.of(param, group["block_size"], other)
                if other == mesh.get_local_rank() or not theirs.blocks:
                    continue
                for end, block in ((0, theirs.first_block), (1, theirs.stop_block - 1)):
                    for position in {0, shard.blocks - 1}:
                        if shard.first_block + position == block:
                            for moment in (0, 1):
                                value = everyone[other, k, moment, end]
                                partials[i][moment][position] = torch.maximum(partials[i][moment][position], value)
    return partials


# ----------------------------------------------------------------------------- checkpoints
def _quantized_sharded(optimizer: Any) -> list[tuple[int, torch.Tensor, Mapping[str, Any]]]:
    """``(state-dict index, param, group)`` of every row-sharded parameter stepping with 8-bit state."""
    found, index = [], 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            if is_row_sharded(param) and optimizer._quantized(param, group):
                found.append((index, param, group))
            index += 1
    return found


def export_state(optimizer: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` with each row-sharded tensor's codes as ``Shard(0)`` DTensors in the parameter's shape and
    its absmax whole (a collective: every rank calls ``state_dict()``, as ``get_optimizer_state_dict`` does)."""
    found = [(i, p, g) for i, p, g in _quantized_sharded(optimizer) if i in state_dict["state"]]
    if not found:
        return state_dict
    import torch.distributed as dist

    state = dict(state_dict["state"])
    wholes: dict[int, list[tuple[int, str, torch.Tensor]]] = {}
    for index, param, group in found:
        entry = dict(state[index])
        shard = FlatShard.of(param, group["block_size"])
        local_shape = (local_tensor(param).shape[0], *param.shape[1:])
        for key in CODE_KEYS:
            entry[key] = as_row_sharded(entry[key].view(local_shape).clone(), param, param.shape)
        for key in ABSMAX_KEYS:
            whole = entry[key].new_zeros(param.numel() // group["block_size"])
            whole[shard.first_block:shard.stop_block] = entry[key]
            entry[key] = whole
            wholes.setdefault(id(param.device_mesh), []).append((index, key, whole))
        state[index] = entry
    meshes = {id(p.device_mesh): p.device_mesh for _, p, _ in found}
    for key, parts in wholes.items():
        buffer = torch.cat([whole for _, _, whole in parts])
        dist.all_reduce(buffer, op=dist.ReduceOp.MAX, group=meshes[key].get_group())
        offset = 0
        for index, name, whole in parts:
            state[index][name] = buffer[offset:offset + whole.numel()].clone()
            offset += whole.numel()
    return {**state_dict, "state": state}


def import_state(optimizer: Any, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``state_dict`` with every quantised tensor's codes and absmax cut to this rank's elements and blocks (a
    row-sharded parameter) or taken whole and flat (one process), whatever layout they were saved in."""
    saved_state = state_dict.get("state", {})
    if not saved_state:
        return dict(state_dict)
    saved_ids = list(chain.from_iterable(g["params"] for g in state_dict["param_groups"]))
    state = dict(saved_state)
    index = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            saved_id = saved_ids[index] if index < len(saved_ids) else None
            index += 1
            entry = saved_state.get(saved_id)
            if not entry or CODE_KEYS[0] not in entry or not optimizer._quantized(param, group):
                continue
            entry = dict(entry)
            shard = FlatShard.of(param, group["block_size"]) if is_row_sharded(param) else None
            for key in CODE_KEYS:
                entry[key] = _flat_elements(entry[key], shard)
            for key in ABSMAX_KEYS:
                whole = _whole(entry[key])
                entry[key] = whole if shard is None else whole[shard.first_block:shard.stop_block].clone()
            state[saved_id] = entry
    return {**state_dict, "state": state}


def _flat_elements(codes: torch.Tensor, shard: FlatShard | None) -> torch.Tensor:
    if is_dtensor(codes) and shard is not None and is_row_sharded(codes):
        return codes.to_local().reshape(-1).clone()
    whole = _whole(codes).reshape(-1)
    return whole if shard is None else whole[shard.start:shard.stop].clone()


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if is_dtensor(tensor) else tensor
