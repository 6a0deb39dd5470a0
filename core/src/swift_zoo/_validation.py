"""The one validation vocabulary of swift zoo: hyperparameter checks shared by losses and optimizers.

Each ``require_*`` raises :class:`~swift_zoo.ConfigError` naming the owner (``"optimizer 'lion'"``,
``"loss 'dpo'"``), the key, what was expected and what came -- before any arithmetic -- and returns the
value, normalised (a float, an int, a tuple), when it is fine. Numbers must be finite: NaN and infinities
are refused everywhere, so no hyperparameter can turn every weight into NaN after one step. Knobs that
size work or memory (iterations, ranks, group sizes) take :func:`require_int` with an upper bound, so
``power_iterations=10**12`` is an error instead of a hang. Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from swift_zoo._errors import ConfigError


def _refuse(owner: str, key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{owner}: {key} must be {expected}, got {value!r}", key=key, expected=expected, found=value)


def _number(owner: str, key: str, value: object, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(owner, key, expected, value)
    return float(value)


def require_finite(owner: str, key: str, value: object) -> float:
    """A finite number."""
    return _number(owner, key, value, "a finite number")


def require_positive(owner: str, key: str, value: object) -> float:
    """A finite number > 0."""
    number = _number(owner, key, value, "a finite number > 0")
    if number <= 0:
        raise _refuse(owner, key, "> 0", value)
    return number


def require_non_negative(owner: str, key: str, value: object) -> float:
    """A finite number >= 0."""
    number = _number(owner, key, value, "a finite number >= 0")
    if number < 0:
        raise _refuse(owner, key, ">= 0", value)
    return number


def require_in_range(owner: str, key: str, value: object, low: float, high: float, *,
                     low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """A finite number in ``[low, high]`` (each end open when not inclusive)."""
    expected = f"in {'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
    number = _number(owner, key, value, f"a finite number {expected}")
    above = number >= low if low_inclusive else number > low
    below = number <= high if high_inclusive else number < high
    if not (above and below):
        raise _refuse(owner, key, expected, value)
    return number


def require_int(owner: str, key: str, value: object, *, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (a float with an integral value is accepted); the bound keeps a knob
    that sizes work or memory from hanging a step or exhausting memory."""
    expected = f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _refuse(owner, key, expected, value)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise _refuse(owner, key, expected, value)
    number = int(value)
    if not low <= number <= high:
        raise _refuse(owner, key, expected, value)
    return number


def require_betas(owner: str, key: str, value: object, *, count: int = 2, high_inclusive: bool = False) -> tuple[float, ...]:
    """``count`` decay rates, each a finite number in ``[0, 1)`` (``[0, 1]`` with ``high_inclusive``)."""
    expected = f"{count} numbers in [0, 1{']' if high_inclusive else ')'}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _refuse(owner, key, expected, value)
    items = tuple(value)
    if len(items) != count:
        raise _refuse(owner, key, expected, value)
    return tuple(require_in_range(owner, f"{key}[{i}]", beta, 0.0, 1.0, high_inclusive=high_inclusive)
                 for i, beta in enumerate(items))


def require_choice(owner: str, key: str, value: object, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    options = tuple(choices)
    if value not in options:
        raise _refuse(owner, key, "one of " + ", ".join(repr(c) for c in options), value)
    return value


def require_bool(owner: str, key: str, value: object) -> bool:
    """A ``bool`` (not a truthy number or string)."""
    if not isinstance(value, bool):
        raise _refuse(owner, key, "a bool", value)
    return value
