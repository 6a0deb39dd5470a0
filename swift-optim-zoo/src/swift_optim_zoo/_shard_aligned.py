"""torch's fused CPU AdamW on a row shard, element for element as on the whole tensor.

``torch._fused_adamw_`` on CPU is not position-independent: each call runs a vectorised loop over
``numel - numel % V`` elements (``V`` the CPU vector width for the dtype) and a scalar loop over the rest, and
the scalar loop rounds differently (measured: about 0.2% of the tail elements of float32 tensors differ by one
ulp from the vectorised result). On one process an element is in the scalar tail only if it is among the last
``numel % V`` of its tensor. On an FSDP2 shard the tail is the shard's own last elements, so the same update
can differ by an ulp at shard ends -- and methods with an ill-conditioned step (SOAP's eigenbases of
rank-deficient factors) turn an ulp into a visible difference a few steps later.

:func:`aligned_pieces` cuts a shard so that every element sees the path it sees in the whole tensor: the
middle of the shard, between multiples of :data:`ALIGN` global elements, is passed as it is (all
vectorised); each end that is not at such a multiple is computed in a scratch block covering its
``ALIGN``-aligned neighbourhood of the whole tensor (the rest of the block zeros: a zero gradient, moment and
parameter stay zero), which ends where the whole tensor ends when it reaches that far. ``ALIGN`` = 256 is a
multiple of every vector width (and of the kernel's cache-line task unit), so the result does not depend on
``V``. On CUDA the fused kernel has no such tail and nothing is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from swift_zoo.optim import is_row_sharded, local_tensor, row_range

ALIGN = 256


@dataclass(frozen=True)
class Piece:
    """Local elements ``[start, stop)`` of a flattened shard; computed in a scratch block of ``block`` elements
    at offset ``offset`` (``block == 0``: in place)."""

    start: int
    stop: int
    offset: int = 0
    block: int = 0


def aligned_pieces(param: torch.Tensor) -> list[Piece]:
    """The pieces of ``param``'s local shard (see the module docstring); one in-place piece for a plain tensor,
    a CUDA tensor, or an empty shard."""
    local = local_tensor(param)
    if not is_row_sharded(param) or local.device.type != "cpu" or local.numel() == 0:
        return [Piece(0, local.numel())]
    mesh = param.device_mesh
    row = param.numel() // param.shape[0] if param.shape[0] else 0
    first, _ = row_range(param.shape[0], mesh.size(), mesh.get_local_rank())
    return pieces_for_span(first * row, first * row + local.numel(), param.numel())


def pieces_for_span(begin: int, end: int, total: int) -> list[Piece]:
    """The pieces of the elements ``[begin, end)`` of a flattened tensor of ``total`` elements."""
    head = min(-(-begin // ALIGN) * ALIGN, end)
    tail = max(end // ALIGN * ALIGN, head)
    pieces = []
    if head > begin:
        block_start = begin // ALIGN * ALIGN
        pieces.append(Piece(0, head - begin, begin - block_start, min(block_start + ALIGN, total) - block_start))
    if tail > head:
        pieces.append(Piece(head - begin, tail - begin))
    if end > tail:
        pieces.append(Piece(tail - begin, end - begin, 0, min(tail + ALIGN, total) - tail))
    return pieces


def piece_views(tensor: torch.Tensor, piece: Piece) -> torch.Tensor:
    """``piece`` of the flattened local ``tensor``: a view when in place, else a zero scratch block holding it."""
    flat = local_tensor(tensor).reshape(-1)
    if not piece.block:
        return flat[piece.start:piece.stop]
    block = flat.new_zeros(piece.block)
    block[piece.offset:piece.offset + piece.stop - piece.start] = flat[piece.start:piece.stop]
    return block


def write_back(tensor: torch.Tensor, piece: Piece, computed: torch.Tensor) -> None:
    """Copy a scratch block's result for ``piece`` back into the local ``tensor`` (nothing for in-place pieces)."""
    if piece.block:
        local_tensor(tensor).view(-1)[piece.start:piece.stop] = computed[piece.offset:piece.offset + piece.stop - piece.start]
