"""Block-wise 8-bit quantisation with the dynamic (exponent + fraction) map of Dettmers (arXiv:1511.04561,
arXiv:2110.02861), the format bitsandbytes and torchao keep 8-bit optimizer states in.

A tensor is cut into blocks of ``block_size`` consecutive elements; each block stores its absolute maximum
(float32) and, per element, the index (uint8) of the map entry nearest to ``x * (1 / absmax)``. The map has 256 sorted
values in [-1, 1] (signed) or [0, 1] (unsigned): for each decimal exponent ``e = -6 .. 0`` a run of values
``10^e * m``, ``m`` the midpoints of an even split of [0.1, 1] into ``2^(e+6)`` (signed, each also negated) or
``2^(e+7)`` (unsigned) pieces, plus 0 and 1. Small magnitudes get many codes, so the second moment's wide range
survives 8 bits.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=8)
def _map_values(signed: bool) -> tuple[float, ...]:
    values: list[float] = [0.0, 1.0]
    for index in range(7):
        pieces = 2**index if signed else 2 ** (index + 1)
        edges = torch.linspace(0.1, 1.0, pieces + 1, dtype=torch.float32)
        middles = (edges[:-1] + edges[1:]) / 2
        values.extend((10.0 ** (index - 6) * middles).tolist())  # float32 products, as bitsandbytes builds them
        if signed:
            values.extend((-(10.0 ** (index - 6)) * middles).tolist())
    return tuple(sorted(values))


def dynamic_map(signed: bool, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 256 sorted values of the dynamic map (float32)."""
    values = torch.tensor(_map_values(signed), dtype=torch.float32, device=device)
    if values.numel() != 256:
        message = f"dynamic_map: expected 256 values, built {values.numel()}"
        raise AssertionError(message)
    return values


def midpoints(code_map: torch.Tensor) -> torch.Tensor:
    """The 255 decision boundaries between consecutive map values (nearest-value rounding, ties up)."""
    return (code_map[1:] + code_map[:-1]) / 2


def quantize_blockwise(values: torch.Tensor, boundaries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` ``[blocks, block_size]`` -> (uint8 codes of the same shape, float32 absmax ``[blocks]``).

    The code of ``x`` is the nearest map value's to ``x * (1 / absmax)``: a multiply by the block's reciprocal, as
    bitsandbytes scales (torchao divides; the two differ only where a value rounds onto a decision boundary), which
    spares the C kernel a division per element."""
    absmax = values.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    codes = torch.bucketize(values * absmax.reciprocal(), boundaries, right=True)
    return codes.to(torch.uint8), absmax.squeeze(-1).float()


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, code_map: torch.Tensor) -> torch.Tensor:
    """float32 ``[blocks, block_size]`` values from codes and per-block absmax."""
    return code_map[codes.long()] * absmax.unsqueeze(-1)
