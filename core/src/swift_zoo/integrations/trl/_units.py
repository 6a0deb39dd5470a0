"""A pair loss's unit count from the completion lengths alone, before any forward pass.

The Trainer asks for ``num_items_in_batch`` before the accumulation window's first forward pass, when a
pair trainer knows only each completion's scored-token count. The count is the loss's own
:meth:`~swift_zoo.BaseLoss.count_units` on a stand-in batch: the lengths, and zeros for every other
per-pair input. Every zoo pair loss counts from the lengths only (the DPO family: every pair;
reference-free losses: the pairs whose two completions both have a scored token; ``sft``: the chosen
tokens; ``weighted_sum``: each term's count), so the count is the one the loss divides by.
"""

from __future__ import annotations

from typing import Any

import torch

from swift_zoo._errors import LossInputError

_LENGTH_KEYS = ("chosen_lengths", "rejected_lengths")


def units_from_lengths(loss: Any, chosen_lengths: torch.Tensor, rejected_lengths: torch.Tensor) -> torch.Tensor | None:
    """``loss.count_units`` of a batch of pairs with these ``[B]`` lengths; ``None`` when the loss reads an
    input that is not one value per pair (its count may need more than the lengths)."""
    lengths = dict(zip(_LENGTH_KEYS, (chosen_lengths, rejected_lengths)))
    stand_in = {}
    for spec in loss.inputs:
        if spec.key in lengths:
            stand_in[spec.key] = lengths[spec.key]
        elif spec.key == "labels" or tuple(spec.shape) != ("B",):
            return None
        else:
            dtype = {"bool": torch.bool, "int": torch.long}.get(spec.dtype, torch.float32)
            stand_in[spec.key] = torch.zeros(chosen_lengths.shape, dtype=dtype, device=chosen_lengths.device)
    try:
        return torch.as_tensor(loss.count_units(stand_in))
    except LossInputError:
        return None
