"""Optimizer state held by a matrix's owner rank, exported so ``torch.distributed.checkpoint`` can reshard it.

Under FSDP2 a whole-matrix optimizer keeps the state of each matrix it computes whole (a projector basis, low-rank
moments, eigenbases) on that matrix's owner rank only (:class:`~swift_zoo.optim.MatrixOwners`), as plain tensors
and Python values. A checkpoint must not depend on who owned what, so :meth:`ZooOptimizer.state_dict` calls
:func:`export_owner_state`: every rank gets the same keys for every such matrix --

* each owner-held tensor with at least one dimension becomes a ``Shard(0)`` DTensor on the parameter's mesh
  (the owner sends every rank its rows: one ``all_to_all`` per dtype), which DCP saves once and reshards;
* 0-d tensors and Python values (step counters, seeds, queues) are sent to every rank as they are
  (``all_gather_object``: small), so DCP sees them replicated;
* state kept sharded like the parameter (``ZooOptimizer.sharded_state_keys``, e.g. Muon's momentum) is a DTensor
  already and stays as it is.

:meth:`ZooOptimizer.load_state_dict` calls :func:`import_owner_state`, which does the reverse for the *current*
world: the rows of each exported tensor are gathered to the matrix's new owner (which may be another rank, in a
run of another size), values are kept on every rank, and non-owners keep only the sharded state and the values.
A plain (non-DTensor) tensor in a loaded state, as a single-process checkpoint converted with DCP's
``torch_save_to_dcp`` gives after resharding, is taken whole by the owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

import torch

from swift_zoo.optim._sharding import as_row_sharded, is_row_sharded, placeholder
from swift_zoo.optim._wrappers import is_dtensor

if TYPE_CHECKING:
    from swift_zoo.optim._base import ZooOptimizer


def owner_computed_params(optimizer: ZooOptimizer) -> list[tuple[int, torch.Tensor]]:
    """``(state-dict index, parameter)`` of every row-sharded parameter the optimizer computes on an owner."""
    found, index = [], 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            if is_row_sharded(param) and optimizer._owner_computed(param, group):
                found.append((index, param))
            index += 1
    return found


def export_owner_state(optimizer: ZooOptimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` (from ``torch.optim.Optimizer.state_dict``) with every owner-held entry made uniform across
    ranks (see the module docstring). A collective: every rank must call it."""
    owned = owner_computed_params(optimizer)
    if not owned:
        return state_dict
    import torch.distributed as dist

    owners = optimizer.matrix_owners
    owners.assign(param for _, param in owned)
    sharded_keys = optimizer.sharded_state_keys
    state = state_dict["state"]
    described: dict[int, dict[str, Any]] = {}
    for index, param in owned:
        if owners.owns(param) and index in state:
            described[index] = {key: _describe(value) for key, value in state[index].items() if key not in sharded_keys}
    mesh = owned[0][1].device_mesh
    everyone: list[Any] = [None] * mesh.size()
    dist.all_gather_object(everyone, described, group=mesh.get_group())
    merged: dict[int, dict[str, Any]] = {}
    for part in everyone:
        merged.update(part)
    params, outputs, slots = [], [], []
    for index, param in owned:
        for key, (kind, value) in merged.get(index, {}).items():
            if kind == "rows":
                params.append(param)
                outputs.append(state[index][key] if owners.owns(param) else placeholder(*value))
                slots.append((index, key, param, tuple(value[0])))
    locals_ = owners.scatter(params, outputs)
    new_state = dict(state)
    for index, _ in owned:
        entry = {key: value for key, value in state.get(index, {}).items() if key in sharded_keys}
        for key, (kind, value) in merged.get(index, {}).items():
            if kind == "value":
                entry[key] = value
        new_state[index] = entry
    for (index, key, param, shape), local in zip(slots, locals_):
        new_state[index][key] = as_row_sharded(local.clone(), param, shape)
    return {**state_dict, "state": {index: new_state[index] for index in sorted(new_state) if new_state[index]}}


def import_owner_state(optimizer: ZooOptimizer, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``state_dict`` with each owner-held entry gathered whole onto the parameter's owner in this run and
    dropped elsewhere (values kept everywhere). A collective when any state is a DTensor to gather."""
    owned = owner_computed_params(optimizer)
    saved_state = state_dict.get("state", {})
    if not owned or not saved_state:
        return dict(state_dict)
    owners = optimizer.matrix_owners
    owners.assign(param for _, param in owned)
    sharded_keys = optimizer.sharded_state_keys
    saved_ids = list(chain.from_iterable(g["params"] for g in state_dict["param_groups"]))
    params, locals_, rows, slots = [], [], [], []
    new_state = dict(saved_state)
    for index, param in owned:
        if index >= len(saved_ids) or saved_ids[index] not in saved_state:
            continue
        saved_id = saved_ids[index]
        entry: dict[str, Any] = {}
        for key, value in saved_state[saved_id].items():
            if key in sharded_keys:
                entry[key] = value
            elif is_dtensor(value) and value.dim() >= 1:
                params.append(param)
                locals_.append(_local_rows(value))
                rows.append(value.shape[0])
                slots.append((saved_id, key))
            elif isinstance(value, torch.Tensor):
                if owners.owns(param):
                    entry[key] = value
            else:
                entry[key] = value
        new_state[saved_id] = entry
    for (saved_id, key), full in zip(slots, owners.gather(params, locals_, rows=rows)):
        if full is not None:
            new_state[saved_id][key] = full
    return {**state_dict, "state": new_state}


def _describe(value: Any) -> tuple[str, Any]:
    if isinstance(value, torch.Tensor) and value.dim() >= 1:
        return "rows", (tuple(value.shape), value.dtype)
    if isinstance(value, torch.Tensor):
        return "value", value.detach().cpu().clone()
    return "value", value


def _local_rows(value: torch.Tensor) -> torch.Tensor:
    """The local rows of a DTensor redistributed to ``Shard(0)`` on its mesh (DCP loads into our ``Shard(0)``
    templates, so this is normally the local tensor as it is)."""
    from torch.distributed.tensor import Shard

    if not is_row_sharded(value):
        value = value.redistribute(value.device_mesh, [Shard(0)])
    return value.to_local()
