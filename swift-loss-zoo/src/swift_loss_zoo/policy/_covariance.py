r"""Token selection by covariance, shared by Clip-Cov and KL-Cov (Cui et al., arXiv:2505.22617).

The entropy of the policy falls fastest on tokens where the advantage and the log-probability
co-vary most. Per counted token,

.. math::
    \mathrm{Cov}_{i,t} = \big(A_{i,t} - \bar A\big)\big(\log\pi_\theta(o_{i,t}) - \overline{\log\pi_\theta}\big)

with the means over the counted tokens of the call. Both losses act on a small fraction of tokens
(``max(1, int(ratio * #counted tokens))``), so they depend on the batch (a micro-batch split
changes the means and the count); they declare ``batch_dependent``.
"""

from __future__ import annotations

import torch

from swift_zoo.ops import masked_mean


def token_covariance(advantages: torch.Tensor, logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` covariance terms (detached), ``-inf`` where ``mask`` is false."""
    with torch.no_grad():
        advantages = advantages.expand_as(logps)
        centred = (advantages - masked_mean(advantages, mask)) * (logps - masked_mean(logps, mask))
        return torch.where(mask, centred, torch.full((), float("-inf"), dtype=logps.dtype, device=logps.device))


def selection_size(mask: torch.Tensor, ratio: float) -> int:
    """``max(1, int(ratio * #counted tokens))``, as verl."""
    return max(int(ratio * int(mask.sum())), 1)


def top_tokens(scores: torch.Tensor, candidates: torch.Tensor, count: int) -> torch.Tensor:
    """Bool ``[B, T]``: the ``count`` candidates with the largest ``scores`` (fewer when there are fewer)."""
    chosen = torch.zeros_like(candidates)
    count = min(count, int(candidates.sum()))
    if count > 0:
        masked = torch.where(candidates, scores, torch.full((), float("-inf"), dtype=scores.dtype, device=scores.device))
        index = torch.topk(masked.reshape(-1), count).indices
        chosen.view(-1)[index] = True
    return chosen
