"""LD-DPO's tail sums: the log-probs of the tokens a completion has beyond its pair's common length.

Liu et al., "Length Desensitization in Direct Preference Optimization", arXiv:2409.06411: with the common
length :math:`\\ell_p = \\min(n_w, n_l)` of a pair, a sequence log-prob becomes
:math:`\\log\\pi(y) - (1 - \\alpha)\\,\\mathrm{tail}(y)`, the tail being the sum over its scored tokens past
:math:`\\ell_p`. Per-sequence currency for the zoo's DPO-family ``ld_alpha`` option (the ``*_tail_logps``
inputs), computed here once for the losses and the trainer adapters.
"""

from __future__ import annotations

import torch


def ld_tail_logps(
    chosen_token_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_token_logps: torch.Tensor,
    rejected_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``[B]`` sums of the per-token log-probs past each pair's common completion length.

    ``*_token_logps`` ``[B, T]`` are per-token log-probs, ``*_mask`` ``[B, T]`` the completion masks (the
    scored tokens, in order; they need not be contiguous). The ``t``-th scored token of a completion is in
    its tail when ``t > min(n_chosen, n_rejected)``. Differentiable in the log-probs.
    """
    chosen_mask, rejected_mask = chosen_mask.bool(), rejected_mask.bool()
    common = torch.minimum(chosen_mask.sum(-1), rejected_mask.sum(-1))

    def tail(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        position = mask.long().cumsum(-1)  # 1-based position among scored tokens
        in_tail = mask & (position > common[:, None])
        zero = torch.zeros((), dtype=token_logps.dtype, device=token_logps.device)
        return torch.where(in_tail, token_logps, zero).sum(-1)

    return tail(chosen_token_logps, chosen_mask), tail(rejected_token_logps, rejected_mask)
