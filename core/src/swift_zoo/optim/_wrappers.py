"""Which wrapper sharded a parameter, seen from the optimizer: DeepSpeed ZeRO-3, FSDP1 flat parameters,
FSDP2 DTensors, or DeepSpeed ZeRO-1/2 flat partitions -- and the local tensor an element-wise rule works on.

Detection reads only what the wrappers leave on the tensors, so no wrapper needs to be installed:

* ZeRO-3 partitioned parameters carry ``ds_id`` / ``ds_numel``;
* FSDP1 with ``use_orig_params=False`` hands the optimizer ``FlatParameter`` objects (``_is_flat_param``);
* FSDP2 (``fully_shard``) parameters are ``DTensor``\\ s;
* ZeRO-1/2 replace each param group's parameters by one flat fp32 partition, so a group whose role is a
  matrix role (hidden matrix, embedding, head, expert stack) holds a 1-D tensor.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

MATRIX_ROLES = frozenset({"hidden_matrix", "embedding", "tied_embedding", "output_head", "expert_stack"})


@functools.cache
def _dtensor_type() -> type | None:
    """DTensor's class (imported once: this runs for every tensor of every step), or None without torch.distributed."""
    if not torch.distributed.is_available():
        return None
    from torch.distributed.tensor import DTensor

    return DTensor


def is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (an FSDP2 parameter, gradient or state)."""
    cls = _dtensor_type()
    return cls is not None and isinstance(tensor, cls)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The rank-local shard of a DTensor (sharing its storage, so in-place updates reach it); any other
    tensor as it is."""
    return tensor._local_tensor if is_dtensor(tensor) else tensor


def wrapper_of(param: torch.Tensor, group: Mapping[str, Any]) -> str | None:
    """``"zero3"``, ``"fsdp1_flat"``, ``"fsdp2"``, ``"zero1_2"``, or ``None`` for a plain tensor (one process or DDP)."""
    if hasattr(param, "ds_id") or hasattr(param, "ds_numel"):
        return "zero3"
    if getattr(param, "_is_flat_param", False) or type(param).__name__ == "FlatParameter":
        return "fsdp1_flat"
    if is_dtensor(param):
        return "fsdp2"
    if group.get("role") in MATRIX_ROLES and param.dim() < 2:
        return "zero1_2"
    return None


def dtensor_layout_problem(param: torch.Tensor) -> str | None:
    """For a DTensor, why its layout is not FSDP2's ``Shard(0)`` on a 1-D mesh (or replicated), else ``None``."""
    from torch.distributed.tensor import Replicate, Shard

    mesh, placements = param.device_mesh, tuple(param.placements)
    if mesh.ndim != 1:
        return f"a {mesh.ndim}-D device mesh (placements {placements}); only a 1-D mesh is supported"
    placement = placements[0]
    if isinstance(placement, Replicate):
        return None
    if isinstance(placement, Shard) and type(placement) is Shard and placement.dim == 0:
        return None
    return f"placement {placement!r} on a 1-D mesh; only Shard(0) (FSDP2's default) or Replicate is supported"
