"""Segment tables: the nearest dynamic-map code by arithmetic, for the AVX-512 encode of ``_native_adamw_8bit.c``.

The midpoints of a dynamic map (:mod:`~swift_optim_zoo.adamw_8bit.quantization`) are evenly spaced within each
decade. So the sorted midpoints split into *segments*: a segment starts at one midpoint ``S`` (compared exactly)
and holds ``K`` more midpoints on an even grid, ``lo + k w`` for ``k = 1 .. K``. For ``y`` in the segment,

    ``code(y) = base + clamp(floor(t), 0, K)``,  ``t = (y - lo) * (1 / w)`` in float32,

``base`` the number of midpoints up to ``S``. The float32 ``t`` of each grid midpoint is within ``MARGIN / 4`` of
its ``k`` (checked here, with the kernel's arithmetic), and ``t`` never decreases as ``y`` grows; so wherever ``t``
is at least ``MARGIN`` away from every integer the formula is exactly ``torch.bucketize(y, midpoints, right=True)``,
and the kernel sends the few values closer than that (and NaN) to the exact one-read table instead.

Which segment: ``y``'s binade (its float exponent, per sign) holds at most one segment start (checked), so one
comparison with that start picks the lower or the upper of two segments. Tables of 32 entries each, read by the
kernel with in-register permutes where a table read per element was most of its time:

* per binade index (0: ``|y|`` below ``2^(LOWEST_EXPONENT - 127)``, then one per binade, ``TOP_BINADE``: ``|y| >= 1``,
  infinities and NaN): the start inside the binade for ``y >= 0`` and for ``y < 0`` (float; +inf when none), and
  the four segment numbers packed 5 bits each: positive lower, positive upper, negative lower, negative upper;
* per segment (0: below every midpoint): ``lo``, ``1 / w`` (float), ``base`` and ``K`` (int32).
"""

from __future__ import annotations

import bisect
import math

import torch

LOWEST_EXPONENT = 103  # biased exponent of 2^-24 (as _code_tables.LOWEST_EXPONENT)
TOP_BINADE = 127 - LOWEST_EXPONENT + 1  #: the binade index of |y| >= 1 (and of inf and NaN)
ENTRIES = 32  # entries per table: two AVX-512 registers
TABLES = 7  # starts for y >= 0, starts for y < 0, packed segment numbers, lo, 1 / w, base, K
MARGIN = 2.0**-10  #: |t - round(t)| below this goes to the exact table (_native_adamw_8bit.c: SEGMENT_MARGIN)


def _segments(mids: list[float]) -> list[tuple[int, int]]:
    """(index of the start, K) for each segment of the sorted midpoints: a start, then the longest run after it
    whose consecutive gaps equal the first one (to 1e-3 relative)."""
    out, i = [], 0
    while i < len(mids):
        count = min(2, len(mids) - 1 - i)
        if count == 2:
            gap = mids[i + 2] - mids[i + 1]
            while i + count + 1 < len(mids) and abs(mids[i + count + 1] - mids[i + count] - gap) <= 1e-3 * gap:
                count += 1
        out.append((i, count))
        i += count + 1
    return out


def _grid(mids: list[float], start: int, count: int, end: float) -> tuple[float, float]:
    """(lo, w) of a segment: its grid through the K midpoints after the start; with none, a grid that keeps t
    within (0.25, 0.75) between the start and ``end``; with one, a grid that puts the start at t = 0.5."""
    if count >= 2:
        w = (mids[start + count] - mids[start + 1]) / (count - 1)
        return mids[start + 1] - w, w
    if count == 1:
        w = 2 * (mids[start + 1] - mids[start])
        return mids[start + 1] - w, w
    w = 2 * (end - mids[start])
    return mids[start] - 0.25 * w, w


def segment_words(midpoints: torch.Tensor) -> torch.Tensor:
    """The ``TABLES * ENTRIES`` int32 words (floats by their bits) for sorted float32 ``midpoints`` in (-1, 1);
    raises ``ValueError`` where the midpoints do not have the structure (more than 31 segments, two starts in
    one binade, a grid midpoint off its integer)."""
    mids = [float(x) for x in midpoints.cpu()]
    segments = _segments(mids)
    if len(segments) + 1 > ENTRIES:
        message = f"segment_words: {len(segments) + 1} segments, room for {ENTRIES}"
        raise ValueError(message)
    starts = [mids[j] for j, _ in segments]
    low_end = -1.0 if mids[0] < 0 else 0.0  # where y starts: [-1, 1] for a signed map, [0, 1] for an unsigned
    below = _grid([low_end, mids[0]], 0, 0, mids[0])  # segment 0: below every midpoint
    grids = [below] + [_grid(mids, j, count, starts[s + 1] if s + 1 < len(starts) else 1.0)
                       for s, (j, count) in enumerate(segments)]
    lo = torch.tensor([g[0] for g in grids], dtype=torch.float32)
    inv = torch.tensor([1.0 / g[1] for g in grids], dtype=torch.float32)
    for s, (j, count) in enumerate(segments, start=1):
        grid_mids = torch.tensor(mids[j + 1:j + count + 1], dtype=torch.float32)
        t = (grid_mids - lo[s]) * inv[s]  # the kernel's float32 arithmetic
        off = (t.double() - torch.arange(1, count + 1, dtype=torch.float64)).abs()
        if count and float(off.max()) > MARGIN / 4:
            message = f"segment_words: midpoint {j + 1 + int(off.argmax())} is {float(off.max()):.2e} off its grid"
            raise ValueError(message)
    start_pos, start_neg, packed = [math.inf] * ENTRIES, [math.inf] * ENTRIES, [0] * ENTRIES
    for index in range(TOP_BINADE + 1):
        if index == 0:
            low, high = 0.0, 2.0 ** (LOWEST_EXPONENT - 127)
        elif index < TOP_BINADE:
            low, high = 2.0 ** (LOWEST_EXPONENT + index - 1 - 127), 2.0 ** (LOWEST_EXPONENT + index - 127)
        else:
            low, high = 1.0, math.inf
        fields = []
        for negative, (a, b) in enumerate([(low, high), (-high, -low)]):
            inside = [s for s in starts if a <= s < b] if not negative else [s for s in starts if a < s <= b]
            if len(inside) > 1:
                message = f"segment_words: {len(inside)} segment starts in the binade [{low}, {high})"
                raise ValueError(message)
            lowest = a if not negative else math.nextafter(a, math.inf)  # the binade's lowest y
            lower = bisect.bisect_right(starts, math.nextafter(inside[0], -math.inf) if inside else lowest)
            upper = bisect.bisect_right(starts, inside[0]) if inside else lower
            (start_neg if negative else start_pos)[index] = inside[0] if inside else math.inf
            fields += [lower, upper]
        packed[index] = fields[0] | fields[1] << 5 | fields[2] << 10 | fields[3] << 15
    base = [0] + [j + 1 for j, _ in segments]
    count = [0] + [c for _, c in segments]
    pad = ENTRIES - len(grids)
    floats = [torch.tensor(start_pos, dtype=torch.float32), torch.tensor(start_neg, dtype=torch.float32)]
    words = [t.view(torch.int32) for t in floats]
    words.append(torch.tensor(packed, dtype=torch.int32))
    words += [torch.cat([t, torch.zeros(pad)]).view(torch.int32) for t in (lo, inv)]
    words += [torch.tensor(v + [0] * pad, dtype=torch.int32) for v in (base, count)]
    return torch.cat(words)
