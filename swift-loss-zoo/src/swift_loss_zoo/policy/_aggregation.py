"""verl's loss aggregation modes, expressed as a reduction unit and per-unit losses.

``BaseLoss`` owns the one normalisation (``sum(per-unit losses) / N``); a mode only says what a unit
is and what one unit's loss is, from per-token losses ``L_{i,t}`` and the completion mask:

================================  ========  =====================================  ==============================
mode (verl ``loss_agg_mode``)     unit      per-unit loss                          ``num_items_in_batch`` counts
================================  ========  =====================================  ==============================
``token-mean``                    token     ``L_{i,t}``                            completion tokens
``seq-mean-token-mean``           sequence  ``sum_t L_{i,t} / |o_i|``              completions with >= 1 token
``seq-mean-token-sum``            sequence  ``sum_t L_{i,t}``                      completions with >= 1 token
``seq-mean-token-sum-norm``       sequence  ``sum_t L_{i,t} / loss_scale_factor``  completions with >= 1 token
================================  ========  =====================================  ==============================

So with ``num_items_in_batch`` = the count of units over every micro-batch and rank (what
:meth:`GroupPolicyLoss.count_units` returns, summed), the micro-batch losses add up to the loss of
the whole batch, in every mode: verl's ``agg_loss`` with its global ``batch_num_tokens`` /
``global_batch_size``. ``loss_scale_factor=None`` in ``seq-mean-token-sum-norm`` means the padded
length ``T`` of the tensors (verl's default); a constant (the generation budget) keeps the loss
independent of how the batch was padded, and is Dr. GRPO's normaliser.
"""

from __future__ import annotations

from typing import Literal

import torch

from swift_zoo import UnitLosses
from swift_zoo.ops import masked_count, masked_sum

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
LossAggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
SEQUENCE_MODES = LOSS_AGG_MODES[1:]


def unit_of(mode: str) -> str:
    """The reduction unit of ``mode``: ``"token"`` or ``"sequence"``."""
    return "token" if mode == "token-mean" else "sequence"


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str,
              loss_scale_factor: float | None = None) -> UnitLosses:
    """Per-unit losses of ``mode`` from ``[B, T]`` per-token losses (0 where ``mask`` is false)."""
    if mode == "token-mean":
        return UnitLosses(per_token, mask)
    per_sequence = masked_sum(per_token, mask, -1)
    if mode == "seq-mean-token-mean":
        per_sequence = per_sequence / masked_count(mask, -1).clamp(min=1).to(per_token.dtype)
    elif mode == "seq-mean-token-sum-norm":
        per_sequence = per_sequence / float(loss_scale_factor or mask.shape[-1])
    return UnitLosses(per_sequence, mask.any(-1))


def count_units(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """The number of units ``mode`` averages over: counted tokens, or completions with a counted token."""
    return mask.sum() if mode == "token-mean" else mask.any(-1).sum()
