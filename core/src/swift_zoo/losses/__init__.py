"""The loss contract: :class:`BaseLoss`, its declared inputs and its example records."""

from swift_zoo._validation import (
    require_betas,
    require_bool,
    require_choice,
    require_finite,
    require_in_range,
    require_int,
    require_non_negative,
    require_positive,
)
from swift_zoo.losses._base import REDUCTION_UNITS, BaseLoss
from swift_zoo.losses._inputs import LossExample, TensorInput, UnitLosses, validate_inputs

__all__ = [
    "REDUCTION_UNITS",
    "BaseLoss",
    "LossExample",
    "TensorInput",
    "UnitLosses",
    "require_betas",
    "require_bool",
    "require_choice",
    "require_finite",
    "require_in_range",
    "require_int",
    "require_non_negative",
    "require_positive",
    "validate_inputs",
]
