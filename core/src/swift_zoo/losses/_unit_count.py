"""``num_items_in_batch``: the count every loss divides by, checked to be exact before any arithmetic."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from swift_zoo._errors import LossInputError

#: Tensor dtypes too coarse for a count: bfloat16 rounds 1000001 to 999424, float16 stops at 65504.
LOW_PRECISION_COUNTS = (torch.bfloat16, torch.float16)


def check_unit_count(owner: str, count: Any) -> Any:
    """``count`` if it is an exact, positive, whole number of units, else :class:`LossInputError`.

    Accepted: a Python (or numpy) int; a float with an integral value (``1000.0``); a 1-element integer
    tensor, or a float32 / float64 one. Refused, because each gives a silently wrong loss: NaN (a NaN
    loss), infinities (a loss of 0), non-integral floats (``2.5`` units), bool, zero or negative counts,
    and counts a float cannot hold exactly -- any bfloat16 or float16 tensor (a bf16 count of 1000001 reads
    999424), a float32 tensor above 2**24 and a Python float above 2**53 (above these not every whole
    number exists, so the count may already have been rounded). The values of a tensor are checked where
    that needs no device synchronisation, on CPU; the dtype always.
    """
    if isinstance(count, torch.Tensor):
        if count.numel() != 1 or count.is_complex() or count.dtype == torch.bool:
            message = (
                f"{owner}: num_items_in_batch must be a positive number or a 1-element integer or float tensor, "
                f"got a {count.dtype} tensor of shape {tuple(count.shape)}"
            )
            raise LossInputError(message)
        if count.dtype in LOW_PRECISION_COUNTS:
            message = (
                f"{owner}: num_items_in_batch is a {str(count.dtype).replace('torch.', '')} tensor, too coarse for a "
                "count (bfloat16 rounds 1000001 to 999424, float16 overflows past 65504); pass an int64 tensor "
                "(or float32 below 2**24, float64)"
            )
            raise LossInputError(message)
        if count.device.type == "cpu":
            mantissa = round(-math.log2(torch.finfo(count.dtype).eps)) + 1 if count.is_floating_point() else None
            _check_count_value(owner, count.item(), mantissa, f"a {str(count.dtype).replace('torch.', '')} tensor")
        return count.reshape(())
    if isinstance(count, bool) or not isinstance(count, numbers.Real):
        message = (
            f"{owner}: num_items_in_batch must be a positive int or a tensor, got {type(count).__name__} {count!r}"
        )
        raise LossInputError(message)
    is_float = not isinstance(count, numbers.Integral)
    _check_count_value(owner, float(count) if is_float else int(count), 53 if is_float else None, "a float")
    return count


def _check_count_value(owner: str, value: float | int, mantissa_bits: int | None, what: str) -> None:
    """The value checks of :func:`check_unit_count`; ``mantissa_bits``: the float's precision (``None``: exact int)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            message = f"{owner}: num_items_in_batch must be a finite count of units, got {value}"
            raise LossInputError(message)
        if not value.is_integer():
            message = f"{owner}: num_items_in_batch must be a whole number of units, got {value}"
            raise LossInputError(message)
    if value <= 0:
        message = f"{owner}: num_items_in_batch must be > 0, got {value}"
        raise LossInputError(message)
    if mantissa_bits is not None and value > 2**mantissa_bits:
        message = (
            f"{owner}: num_items_in_batch = {value:.0f} as {what} may have been rounded (above 2**{mantissa_bits} not "
            "every whole number exists in that type); pass an int or an int64 tensor"
        )
        raise LossInputError(message)
