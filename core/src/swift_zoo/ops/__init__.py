"""Shared tensor operations, written once: the causal shift, log-probabilities of labels,
stable ``log1mexp``, masked reductions and whitening."""

from swift_zoo.ops._logps import (
    SequenceLogps,
    linear_sequence_logps,
    linear_token_logps,
    sequence_logps,
    token_logps,
)
from swift_zoo.ops._masked import (
    masked_count,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    zero_gradient_where,
)
from swift_zoo.ops._numerics import log1mexp, upcast
from swift_zoo.ops._shift import IGNORE_INDEX, shift_labels

__all__ = [
    "IGNORE_INDEX",
    "SequenceLogps",
    "linear_sequence_logps",
    "linear_token_logps",
    "log1mexp",
    "masked_count",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "sequence_logps",
    "shift_labels",
    "token_logps",
    "upcast",
    "zero_gradient_where",
]
