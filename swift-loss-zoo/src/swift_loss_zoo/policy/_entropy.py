r"""Entropy terms shared by the policy losses: the high-entropy token mask ("the 80/20 rule").

Wang et al., "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective RL for LLM
Reasoning", arXiv:2506.01939: keeping the policy gradient only on the top ``rho`` fraction of tokens
by entropy (rho = 0.2) trains as well or better. TRL ``top_entropy_quantile``: the threshold is the
``1 - rho`` quantile (``torch.quantile``, linear interpolation) of the entropies of the counted
tokens, and a token is kept when its entropy is at least that. Here the quantile is taken over the
tokens of the call (TRL gathers them across processes first, so the two agree on one process), in
float32 as TRL (the quantile level itself rounds there, which decides ties at an exact quantile
position): the mask depends on the batch, so a loss using it declares itself batch-dependent.
"""

from __future__ import annotations

import torch


def high_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    """Bool ``[B, T]``: counted tokens whose entropy is in the top ``quantile`` fraction of the call's tokens."""
    with torch.no_grad():
        values = entropy.float()
        counted = values[mask]
        if counted.numel() == 0:
            return torch.zeros_like(mask)
        threshold = torch.quantile(counted, 1.0 - quantile)
        return (values >= threshold) & mask
