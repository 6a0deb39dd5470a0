"""Whitening of per-response values over the batch's counted tokens (verl's ``masked_whiten`` of a broadcast)."""

from __future__ import annotations

import torch

from swift_zoo.ops import masked_whiten


def whiten_over_tokens(per_response: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""``[B]``: ``(x_i - m) / sqrt(v + 1e-8)`` with the mean ``m`` and Bessel-corrected variance ``v`` of
    ``x`` broadcast over each response's counted tokens, so a response weighs by its length; 0 for a
    response without counted tokens. The same as whitening the ``[B, T]`` broadcast and reading any
    counted token of each row."""
    white = masked_whiten(per_response.unsqueeze(-1).expand(mask.shape), mask)
    return white.sum(-1) / mask.sum(-1).clamp(min=1).to(white.dtype)
