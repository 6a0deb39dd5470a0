r"""LD-DPO: down-weight the log-probs of the tokens a completion has beyond its pair's common length.

Liu et al., "Length Desensitization in Direct Preference Optimization", arXiv:2409.06411. For a pair
with completion lengths :math:`n_w, n_l` and the common length :math:`\ell_p = \min(n_w, n_l)`, each
sequence log-prob becomes

.. math::
    \log\pi_{LD}(y) = \sum_{t \le \ell_p} \log\pi(y_t) + \alpha \sum_{t > \ell_p} \log\pi(y_t)
                    = \log\pi(y) - (1 - \alpha)\,\mathrm{tail}(y)

(``ld_alpha`` = :math:`\alpha \in [0, 1]`; 1 is plain DPO). In the zoo's per-sequence currency the tail
sums are inputs (``policy_chosen_tail_logps``, ... -- zero for the shorter completion of each pair);
:func:`ld_tail_logps` computes them from per-token log-probs. TRL 1.x applies the weighting to the policy
**and** the reference log-probs; TRL <= 0.28 and ms-swift to the policy only.
"""

from __future__ import annotations

import torch

TAIL_KEYS = {
    "policy_chosen_logps": "policy_chosen_tail_logps",
    "policy_rejected_logps": "policy_rejected_tail_logps",
    "reference_chosen_logps": "reference_chosen_tail_logps",
    "reference_rejected_logps": "reference_rejected_tail_logps",
}


def ld_tail_logps(
    chosen_token_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_token_logps: torch.Tensor,
    rejected_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``[B]`` sums of the per-token log-probs past each pair's common completion length.

    ``*_token_logps`` ``[B, T]`` are per-token log-probs, ``*_mask`` ``[B, T]`` the completion masks (the
    scored tokens, in order; they need not be contiguous). The ``t``-th scored token of a completion is in
    its tail when ``t > min(n_chosen, n_rejected)``.
    """
    chosen_mask, rejected_mask = chosen_mask.bool(), rejected_mask.bool()
    common = torch.minimum(chosen_mask.sum(-1), rejected_mask.sum(-1))

    def tail(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        position = mask.long().cumsum(-1)  # 1-based position among scored tokens
        in_tail = mask & (position > common[:, None])
        return torch.where(in_tail, token_logps, torch.zeros((), dtype=token_logps.dtype)).sum(-1)

    return tail(chosen_token_logps, chosen_mask), tail(rejected_token_logps, rejected_mask)


def length_desensitized(logps: torch.Tensor, tail_logps: torch.Tensor, ld_alpha: float) -> torch.Tensor:
    """``logps - (1 - ld_alpha) * tail_logps``: the summed log-prob with the tail weighted by ``ld_alpha``."""
    return logps - (1.0 - ld_alpha) * tail_logps
