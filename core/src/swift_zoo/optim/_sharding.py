r"""Whole matrices under FSDP2: which rank computes each one, and the batched exchange to and from it.

FSDP2 (``fully_shard``) hands an optimizer ``DTensor`` parameters, each split by rows over a 1-D device mesh
(``Shard(0)``; rows cut like ``torch.chunk``, so the last ranks may hold fewer rows, or none). An element-wise
rule runs on the local rows as it is. A method that needs a whole matrix (an SVD, Newton-Schulz, ``G G^T``) must
not run on a shard. The pattern this module serves::

    owners = optimizer.matrix_owners            # one MatrixOwners per optimizer (ZooOptimizer creates it)
    owners.assign(params)                       # each sharded matrix gets one owner rank, balanced by numel
    inputs = [...]                              # element-wise pre-phase on local rows (local_tensor(...))
    fulls = owners.gather(params, inputs)       # the whole tensor on its owner, None on the other ranks
    outputs = [f(x) if x is not None else placeholder(shape, dtype) for x in fulls]   # owner computes
    mine = owners.scatter(params, outputs)      # every rank gets its rows of each output (rows=False: all of it)
    ...                                         # element-wise post-phase on local rows

* **Owners** (:func:`plan_owners`): largest matrix first, each to the rank with the fewest elements so far
  (ties: the lowest rank) -- deterministic, so every rank computes the same plan without talking. Matrices
  assigned later (``add_param_group``) go to the least-loaded rank without moving earlier ones, so state held
  by an owner never has to move during training.
* **Exchange**: one ``all_to_all_single`` per dtype for all matrices of a call (``gather``: each rank sends
  its rows of every matrix to that matrix's owner; ``scatter``: each owner sends every rank its rows, or the
  whole tensor with ``rows=False``). Non-owners pass a *placeholder* for each output -- any tensor with the
  output's shape and dtype, e.g. :func:`placeholder` (a meta tensor) -- so every rank knows what it receives.
  Nothing is gathered to every rank, and only each non-owner's rows travel: per matrix and direction,
  ``numel * (W - 1) / W`` elements in all.
* **Partial sums** (:func:`sum_over_shards`): where a method needs only row, column or block sums of a
  matrix, an all-reduce of the ranks' partial sums is exact up to the order of summation and moves
  ``O(rows + cols)`` words instead of the ``2 m n`` of owner compute.

On one process, under DDP, for plain tensors and for replicated DTensors, every rank is its own owner:
``gather`` and ``scatter`` return what they were given and nothing of ``torch.distributed`` is touched.

Every collective made here is counted in the :class:`CommunicationLedger` of :func:`communication_ledger`
(bytes each rank sends), for the benchmark and the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from swift_zoo._errors import UnsupportedShardingError
from swift_zoo.optim._wrappers import is_dtensor, local_tensor


# ----------------------------------------------------------------------------- layout
def row_range(rows: int, world_size: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of the rows rank ``rank`` holds when ``rows`` rows are split like ``torch.chunk``
    over ``world_size`` ranks (FSDP2's ``Shard(0)``): chunks of ``ceil(rows / world_size)``, the last ranks
    possibly shorter or empty."""
    chunk = -(-rows // world_size) if rows else 0
    start = min(rank * chunk, rows)
    return start, min(start + chunk, rows)


def is_row_sharded(tensor: Any) -> bool:
    """Whether ``tensor`` is a DTensor split by rows over a 1-D mesh of more than one rank (FSDP2's layout)."""
    if not is_dtensor(tensor):
        return False
    from torch.distributed.tensor import Shard

    placements = tuple(tensor.placements)
    return (tensor.device_mesh.ndim == 1 and tensor.device_mesh.size() > 1 and len(placements) == 1
            and type(placements[0]) is Shard and placements[0].dim == 0)


def placeholder(shape: Sequence[int] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """What a non-owner passes to :meth:`MatrixOwners.scatter` for an output it does not compute: a meta
    tensor carrying only the shape and dtype."""
    return torch.empty(tuple(shape), dtype=dtype, device="meta")


def sharded_zeros(param: torch.Tensor, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """Zeros of global ``shape`` whose dim 0 is split like ``param``'s rows: a ``Shard(0)`` DTensor for a
    row-sharded ``param`` (``shape[0]`` must equal ``param.shape[0]``), a plain tensor otherwise. State created
    this way is resharded by ``torch.distributed.checkpoint`` like the parameter."""
    shape = tuple(int(s) for s in shape)
    if not is_row_sharded(param):
        return torch.zeros(shape, dtype=dtype, device=param.device)
    if shape[0] != param.shape[0]:
        message = f"sharded_zeros: shape {shape} must have the parameter's {param.shape[0]} rows first"
        raise ValueError(message)
    mesh = param.device_mesh
    start, stop = row_range(shape[0], mesh.size(), mesh.get_local_rank())
    local = torch.zeros((stop - start, *shape[1:]), dtype=dtype, device=local_tensor(param).device)
    return as_row_sharded(local, param, shape)


def as_row_sharded(local: torch.Tensor, param: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The DTensor of global ``shape`` on ``param``'s mesh (``Shard(0)``) whose local rows are ``local``."""
    from torch.distributed.tensor import DTensor, Shard

    shape = tuple(int(s) for s in shape)
    stride = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    return DTensor.from_local(local, param.device_mesh, [Shard(0)], run_check=False, shape=torch.Size(shape),
                              stride=stride)


def _check_local_rows(tensor: torch.Tensor, rows: int, world_size: int, rank: int, what: str) -> None:
    start, stop = row_range(rows, world_size, rank)
    if tensor.shape[0] != stop - start:
        message = (
            f"{what}: expected rank {rank} of {world_size} to hold rows [{start}, {stop}) of {rows} (FSDP2's "
            f"torch.chunk split), found {tensor.shape[0]} local rows"
        )
        raise UnsupportedShardingError(message)


# ----------------------------------------------------------------------------- ledger
@dataclass
class CommunicationLedger:
    """Bytes this rank sent in the optimizer's collectives, by kind (``all_to_all``, ``all_reduce``), how many
    calls, and the most bytes of whole matrices one gather put on this rank (``owner_peak_bytes``: the owner's
    extra memory). ``all_to_all``: the bytes of the segments sent to other ranks, exactly. ``all_reduce``:
    ``2 (W - 1) / W`` times the buffer, what a ring all-reduce sends per rank."""

    bytes_sent: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    owner_peak_bytes: int = 0

    def record(self, kind: str, nbytes: float) -> None:
        self.bytes_sent[kind] = self.bytes_sent.get(kind, 0.0) + nbytes
        self.calls[kind] = self.calls.get(kind, 0) + 1

    @property
    def total_bytes(self) -> float:
        return sum(self.bytes_sent.values())

    def reset(self) -> None:
        self.bytes_sent.clear()
        self.calls.clear()
        self.owner_peak_bytes = 0


_LEDGERS: list[CommunicationLedger] = []


@contextmanager
def communication_ledger() -> Iterator[CommunicationLedger]:
    """Count the optimizer's own collectives inside the ``with`` block (not FSDP's gathers of parameters)."""
    ledger = CommunicationLedger()
    _LEDGERS.append(ledger)
    try:
        yield ledger
    finally:
        _LEDGERS.remove(ledger)


def record_collective(kind: str, nbytes: float) -> None:
    """Count ``nbytes`` sent by this rank in a collective of ``kind`` in every open ledger."""
    for ledger in _LEDGERS:
        ledger.record(kind, nbytes)


def _record_owner_bytes(nbytes: int) -> None:
    for ledger in _LEDGERS:
        ledger.owner_peak_bytes = max(ledger.owner_peak_bytes, nbytes)


# ----------------------------------------------------------------------------- owners
def plan_owners(numels: Sequence[int], world_size: int, loads: list[int] | None = None) -> list[int]:
    """An owner rank for each matrix: largest first, each to the least-loaded rank (ties: the lowest rank).

    ``loads`` (elements already owned per rank) is updated in place, so later calls balance against earlier ones.
    """
    loads = loads if loads is not None else [0] * world_size
    owners = [0] * len(numels)
    for index in sorted(range(len(numels)), key=lambda i: (-numels[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        owners[index] = rank
        loads[rank] += numels[index]
    return owners


class MatrixOwners:
    """Which rank computes each whole matrix of an optimizer, and the batched gather/scatter to and from it.

    Only row-sharded DTensors (:func:`is_row_sharded`) get an owner; every other tensor is computed where it
    is (``owner_of`` is ``None``, ``owns`` is ``True``). See the module docstring for the pattern.
    """

    def __init__(self) -> None:
        self._owner: dict[int, int] = {}
        self._loads: dict[int, list[int]] = {}
        self._meshes: dict[int, Any] = {}

    # ------------------------------------------------------------------ plan
    def assign(self, params: Iterable[torch.Tensor]) -> None:
        """Give every new row-sharded parameter an owner (balanced by numel, deterministic across ranks)."""
        new: dict[int, list[torch.Tensor]] = {}
        for param in params:
            if id(param) in self._owner or not is_row_sharded(param):
                continue
            mesh = param.device_mesh
            self._meshes.setdefault(id(mesh), mesh)
            new.setdefault(id(mesh), []).append(param)
        for key, fresh in new.items():
            unique = list({id(p): p for p in fresh}.values())  # a parameter listed twice gets one owner
            loads = self._loads.setdefault(key, [0] * self._meshes[key].size())
            for param, rank in zip(unique, plan_owners([p.numel() for p in unique], len(loads), loads)):
                self._owner[id(param)] = rank

    def owner_of(self, param: torch.Tensor) -> int | None:
        """The mesh rank that computes ``param`` whole, or ``None`` when it is computed where it is."""
        if not is_row_sharded(param):
            return None
        if id(param) not in self._owner:
            self.assign([param])
        return self._owner[id(param)]

    def owns(self, param: torch.Tensor) -> bool:
        """Whether this rank computes ``param`` (always for plain tensors and replicated DTensors)."""
        owner = self.owner_of(param)
        return owner is None or owner == param.device_mesh.get_local_rank()

    def loads(self) -> dict[int, list[int]]:
        """Elements owned per rank, per mesh (for reports)."""
        return {key: list(value) for key, value in self._loads.items()}

    # ------------------------------------------------------------------ exchange
    def gather(self, params: Sequence[torch.Tensor], tensors: Sequence[torch.Tensor],
               *, rows: Sequence[int] | None = None) -> list[torch.Tensor | None]:
        """For each ``i``: the whole of ``tensors[i]`` on ``params[i]``'s owner, ``None`` on other ranks.

        ``tensors[i]`` is this rank's rows of a tensor whose dim 0 is split like ``torch.chunk`` (the local
        gradient, a momentum, a cast of either: the parameter's rows; any trailing shape). ``rows[i]`` is that
        tensor's global row count (default: ``params[i].shape[0]``). One ``all_to_all_single`` per dtype.
        """
        global_rows = [p.shape[0] for p in params] if rows is None else list(rows)
        result: list[torch.Tensor | None] = list(tensors)
        for mesh, indices in self._by_mesh(params):
            world, me = mesh.size(), mesh.get_local_rank()
            for dtype, chosen in _by_dtype(indices, tensors):
                owners = [self._owner[id(params[i])] for i in chosen]
                counts = [global_rows[i] for i in chosen]
                trailing = [math.prod(tensors[i].shape[1:]) for i in chosen]
                for i, n in zip(chosen, counts):
                    _check_local_rows(tensors[i], n, world, me, "MatrixOwners.gather")
                send_parts: list[list[torch.Tensor]] = [[] for _ in range(world)]
                for i, owner in zip(chosen, owners):
                    send_parts[owner].append(tensors[i].reshape(-1))
                mine = [k for k, owner in enumerate(owners) if owner == me]
                recv_sizes = [sum(_rows(counts[k], world, s) * trailing[k] for k in mine) for s in range(world)]
                received = _all_to_all(send_parts, recv_sizes, dtype, tensors[chosen[0]].device, mesh, me)
                pieces: dict[int, list[torch.Tensor]] = {k: [] for k in mine}
                offset = 0
                for s in range(world):
                    for k in mine:
                        count = _rows(counts[k], world, s) * trailing[k]
                        shape = (_rows(counts[k], world, s), *tensors[chosen[k]].shape[1:])
                        pieces[k].append(received[offset:offset + count].view(shape))
                        offset += count
                for k, i in enumerate(chosen):
                    result[i] = torch.cat(pieces[k]) if k in pieces else None
                _record_owner_bytes(sum(result[chosen[k]].numel() * result[chosen[k]].element_size() for k in mine))
        return result

    def scatter(self, params: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor],
                *, rows: bool | Sequence[bool] = True) -> list[torch.Tensor]:
        """For each ``i``: this rank's rows of ``outputs[i]`` (``rows[i]`` true; dim 0 split like ``torch.chunk``,
        as ``params[i]``'s rows when the output has its row count), or all of it (``rows[i]`` false).

        On ``params[i]``'s owner ``outputs[i]`` is the computed tensor; elsewhere a placeholder with its shape
        and dtype (:func:`placeholder`). One ``all_to_all_single`` per dtype.
        """
        by_rows = [rows] * len(outputs) if isinstance(rows, bool) else list(rows)
        result = list(outputs)
        for mesh, indices in self._by_mesh(params):
            world, me = mesh.size(), mesh.get_local_rank()
            for dtype, chosen in _by_dtype(indices, outputs):
                owners = [self._owner[id(params[i])] for i in chosen]
                send_parts: list[list[torch.Tensor]] = [[] for _ in range(world)]
                for i, owner in zip(chosen, owners):
                    if owner != me:
                        continue
                    full = outputs[i]
                    for dest in range(world):
                        if by_rows[i]:
                            start, stop = row_range(full.shape[0], world, dest)
                            send_parts[dest].append(full[start:stop].reshape(-1))
                        else:
                            send_parts[dest].append(full.reshape(-1))
                sizes = [self._received_numel(outputs[i], by_rows[i], world, me) for i in chosen]
                recv_sizes = [sum(n for n, owner in zip(sizes, owners) if owner == s) for s in range(world)]
                device = next((outputs[i].device for i in chosen if outputs[i].device.type != "meta"),
                              local_tensor(params[chosen[0]]).device)
                received = _all_to_all(send_parts, recv_sizes, dtype, device, mesh, me)
                offsets = [sum(recv_sizes[:s]) for s in range(world)]
                for i, owner, count in zip(chosen, owners, sizes):
                    shape = tuple(outputs[i].shape)
                    if by_rows[i]:
                        start, stop = row_range(shape[0], world, me)
                        shape = (stop - start, *shape[1:])
                    result[i] = received[offsets[owner]:offsets[owner] + count].view(shape)
                    offsets[owner] += count
        return result

    @staticmethod
    def _received_numel(output: torch.Tensor, by_rows: bool, world: int, me: int) -> int:
        if not by_rows:
            return output.numel()
        return _rows(output.shape[0], world, me) * math.prod(output.shape[1:])

    def _by_mesh(self, params: Sequence[torch.Tensor]) -> list[tuple[Any, list[int]]]:
        groups: dict[int, list[int]] = {}
        for i, param in enumerate(params):
            if self.owner_of(param) is not None:
                groups.setdefault(id(param.device_mesh), []).append(i)
        return [(self._meshes[key], indices) for key, indices in groups.items()]


def _rows(rows: int, world: int, rank: int) -> int:
    start, stop = row_range(rows, world, rank)
    return stop - start


def _by_dtype(indices: list[int], tensors: Sequence[torch.Tensor]) -> list[tuple[torch.dtype, list[int]]]:
    groups: dict[torch.dtype, list[int]] = {}
    for i in indices:
        groups.setdefault(tensors[i].dtype, []).append(i)
    return sorted(groups.items(), key=lambda item: str(item[0]))


def _all_to_all(send_parts: list[list[torch.Tensor]], recv_sizes: list[int], dtype: torch.dtype,
                device: torch.device, mesh: Any, me: int) -> torch.Tensor:
    import torch.distributed as dist

    send_sizes = [sum(t.numel() for t in parts) for parts in send_parts]
    flat = [t for parts in send_parts for t in parts]
    send = torch.cat(flat) if flat else torch.empty(0, dtype=dtype, device=device)
    received = torch.empty(sum(recv_sizes), dtype=dtype, device=device)
    dist.all_to_all_single(received, send.to(device), recv_sizes, send_sizes, group=mesh.get_group())
    itemsize = torch.empty((), dtype=dtype).element_size()
    record_collective("all_to_all", sum(n for rank, n in enumerate(send_sizes) if rank != me) * itemsize)
    return received


# ----------------------------------------------------------------------------- partial sums
def sum_over_shards(params: Sequence[torch.Tensor], partials: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """For each ``i``: the sum over the ranks of ``partials[i]`` when ``params[i]`` is row-sharded (a partial
    sum from this rank's rows), else ``partials[i]`` itself. One all-reduce per (mesh, dtype) for all of them;
    every rank gets the same result."""
    sharded = [i for i, p in enumerate(params) if is_row_sharded(p)]
    result = list(partials)
    if not sharded:
        return result
    import torch.distributed as dist

    groups: dict[tuple[int, torch.dtype], list[int]] = {}  # in order of first appearance: the same on every rank
    meshes: dict[int, Any] = {}
    for i in sharded:
        mesh = params[i].device_mesh
        meshes[id(mesh)] = mesh
        groups.setdefault((id(mesh), partials[i].dtype), []).append(i)
    for (mesh_key, _), chosen in groups.items():
        mesh = meshes[mesh_key]
        buffer = torch.cat([partials[i].reshape(-1) for i in chosen])
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=mesh.get_group())
        world = mesh.size()
        record_collective("all_reduce", 2 * (world - 1) / world * buffer.numel() * buffer.element_size())
        offset = 0
        for i in chosen:
            count = partials[i].numel()
            result[i] = buffer[offset:offset + count].view(partials[i].shape)
            offset += count
    return result
