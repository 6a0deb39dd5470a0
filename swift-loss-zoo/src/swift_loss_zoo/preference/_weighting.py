r"""WPO: weight each pair by how likely the policy is to generate its completions (off-policy correction).

Zhou et al., "WPO: Enhancing RLHF with Weighted Preference Optimization", arXiv:2406.11827 (Eq. 2,
"aligned" weights). For a completion of :math:`n` scored tokens,

.. math::
    w(y) = \exp\Big(\frac1n \sum_t \big(\log\pi(y_t) - \log\textstyle\sum_v \pi(v)^2\big)\Big)

computed without gradient, and each pair's loss is multiplied by :math:`w(y_w)\,w(y_l)` (no clamp, as TRL
1.x; TRL <= 0.28 clamped the product at 1). In the zoo's per-sequence currency the inputs are the summed
log-probs, the token counts and the summed ``log Σ_v π(v)²`` of each completion
(``policy_chosen_log_sum_sq_probs``, ``policy_rejected_log_sum_sq_probs``), which
:func:`sequence_log_sum_sq_probs` computes from logits.
"""

from __future__ import annotations

import torch

from swift_zoo.ops import shift_labels, upcast

IGNORE_INDEX = -100


def wpo_weights(
    policy_logps: torch.Tensor, log_sum_sq_probs: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """``exp((policy_logps - log_sum_sq_probs) / max(lengths, 1))``, detached, ``[B]``."""
    with torch.no_grad():
        policy = upcast(policy_logps.detach())
        count = lengths.to(policy.dtype).clamp(min=1.0)
        return torch.exp((policy - upcast(log_sum_sq_probs).to(policy.dtype)) / count)


def sequence_log_sum_sq_probs(logits: torch.Tensor, labels: torch.Tensor, *,
                              ignore_index: int = IGNORE_INDEX, shift: bool = True) -> torch.Tensor:
    """``[B]`` sums over scored tokens of ``log Σ_v softmax(logits[b, t])_v²`` (no gradient).

    Scored tokens as :func:`swift_zoo.ops.sequence_logps`: with ``shift=True`` the logits at ``t`` are
    scored where ``labels[t + 1] != ignore_index``. Computed in float32 at least, one ``[B, T, V]``
    buffer.
    """
    with torch.no_grad():
        aligned = shift_labels(labels, ignore_index) if shift else labels
        log_probs = torch.log_softmax(upcast(logits.detach()), dim=-1)
        per_token = torch.logsumexp(2.0 * log_probs, dim=-1)
        return torch.where(aligned != ignore_index, per_token, torch.zeros((), dtype=per_token.dtype)).sum(-1)
