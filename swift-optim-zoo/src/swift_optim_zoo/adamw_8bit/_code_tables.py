"""The lookup table that gives the nearest dynamic-map code of a value in one read, for the C kernel of ``adamw_8bit``.

:func:`~swift_optim_zoo.adamw_8bit.quantization.quantize_blockwise` encodes ``y = x * (1 / absmax)`` as
``bucketize(y, midpoints, right=True)`` (the number of midpoints ``<= y``). Here the float32 line is cut into buckets
by the bits of ``y``: its sign, its exponent (from 2^-24, below every midpoint of both maps, up to 1) and the top
``MANTISSA_BITS`` bits of its mantissa. A bucket is narrow enough to hold at most one midpoint (checked when the
table is built), and every value in it shares its top bits, so one 32-bit entry per bucket says everything:
``base`` (bits 17 and up), the code of the bucket's lowest value, and ``key`` (bits 0-16), the low 16 bits of the
midpoint inside the bucket (mirrored, ``0xFFFF - bits``, for negative buckets, whose values fall as those bits
rise; ``0x10000``, never reached, when there is none). Then ``code(y) = base + (t >= key)``, ``t`` the low 16 bits
of ``|y|`` (mirrored likewise for a negative ``y``). The table is computed with ``torch.bucketize`` itself at each
bucket's ends, so the codes are exactly the torch rule's. ``_native_adamw_8bit.c`` computes the bucket of ``y``
with the same constants. Its scalar loop reads this table for every value; its AVX-512 loop finds codes by arithmetic
(:mod:`~swift_optim_zoo.adamw_8bit._code_segments`, whose tables follow this one) and reads it only for the values
that arithmetic leaves undecided.
"""

from __future__ import annotations

import torch

from swift_optim_zoo.adamw_8bit import _code_segments
from swift_optim_zoo.adamw_8bit._code_segments import segment_words

MANTISSA_BITS = 7
LOWEST_EXPONENT = _code_segments.LOWEST_EXPONENT  # biased exponent of 2^-24: |y| below it falls in the bucket of 0
#: buckets per sign: [0, 2^-24), the binades up to 1 cut in 2^MANTISSA_BITS pieces, [1, inf] (and NaN)
BUCKETS = ((127 - LOWEST_EXPONENT) << MANTISSA_BITS) + 2


def _floats(bits: torch.Tensor) -> torch.Tensor:
    return bits.to(torch.int32).view(torch.float32)


def code_table(midpoints: torch.Tensor) -> torch.Tensor:
    """The int32 table of ``2 * BUCKETS`` entries (positive buckets, then negative) for
    ``bucketize(y, midpoints, right=True)`` with sorted float32 ``midpoints`` (at most 255 of them), followed by
    the :func:`~swift_optim_zoo.adamw_8bit._code_segments.segment_words` the AVX-512 encode reads first."""
    if midpoints.dtype != torch.float32 or midpoints.dim() != 1 or midpoints.numel() > 255:
        message = (f"code_table: expected at most 255 float32 midpoints, got {midpoints.numel()} of "
                   f"{midpoints.dtype}")
        raise ValueError(message)
    midpoints = midpoints.cpu()
    if float(midpoints.abs().min()) <= 2.0 ** (LOWEST_EXPONENT - 127):
        message = f"code_table: a midpoint is within 2^{LOWEST_EXPONENT - 127} of 0; lower LOWEST_EXPONENT"
        raise ValueError(message)
    index = torch.arange(BUCKETS, dtype=torch.int64)
    start = (index - 1 + (LOWEST_EXPONENT << MANTISSA_BITS)) << (23 - MANTISSA_BITS)  # magnitude bits of each bucket
    start[0] = 0
    end = torch.cat([start[1:], torch.tensor([0x7F800001])])  # exclusive; the last bucket runs to +inf
    low, high = _floats(start), _floats(end - 1)
    lowest = torch.cat([low, -high])  # each bucket's lowest and highest value: positive buckets, then negative
    highest = torch.cat([high, -low])
    base = torch.bucketize(lowest, midpoints, right=True)
    top = torch.bucketize(highest, midpoints, right=True)
    if int((top - base).max()) > 1:
        message = f"code_table: a bucket holds more than one midpoint; raise MANTISSA_BITS ({MANTISSA_BITS})"
        raise ValueError(message)
    inside = midpoints[base.clamp(max=midpoints.numel() - 1)]
    low_bits = inside.abs().view(torch.int32).to(torch.int64) & 0xFFFF
    key = torch.cat([low_bits[:BUCKETS], 0xFFFF - low_bits[BUCKETS:]])
    key = torch.where(top > base, key, torch.tensor(0x10000))
    return torch.cat([((base << 17) | key).to(torch.int32), segment_words(midpoints)])
