r"""Corrections for completions the trained policy did not sample itself.

Two mismatches, both measured against ``rollout_per_token_logps`` (log-probs the *sampler*, e.g. vLLM,
reported for the tokens it drew):

* **Rollout importance sampling** (:func:`rollout_weights`): the sampler and the trainer disagree
  slightly even with the same weights (bf16 kernels, different attention). With
  :math:`d_t = \log\pi_\mathrm{old}(o_t) - \log\pi_\mathrm{rollout}(o_t)` the token weight is
  :math:`w_t = e^{d_t}` (``token_*`` modes) or the sequence weight :math:`w_i = e^{\sum_t d_t}` on
  every token of the completion (``sequence_*``); ``*_truncate`` clamps it to
  ``[minimum, maximum]`` (TIS), ``*_mask`` zeroes it outside that range (MIS / IcePop). The weight
  is detached and multiplies the policy term of the per-token loss (not the KL or entropy terms).
  Log-differences are bounded at +-20 before ``exp``. TRL ``vllm_importance_sampling_mode``, verl
  ``rollout_is`` + ``rollout_is_threshold``, ms-swift ``rollout_importance_sampling_mode``.
* **Off-policy sequence masking** (:func:`off_policy_keep`, DeepSeek-V3.2, arXiv:2512.02556): a
  completion with a negative advantage whose mean :math:`\log\pi_\mathrm{sampler} - \log\pi_\theta`
  exceeds ``threshold`` contributes no policy term (it still counts as a unit, as in TRL
  ``off_policy_mask_threshold``).
"""

from __future__ import annotations

import torch

from swift_loss_zoo.policy._estimators import bounded
from swift_zoo.ops import masked_mean, masked_sum

ROLLOUT_CORRECTIONS = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def rollout_weights(old_minus_rollout: torch.Tensor, mask: torch.Tensor, mode: str, minimum: float | None,
                    maximum: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached ``[B, T]`` importance weights of one of :data:`ROLLOUT_CORRECTIONS` (0 where ``mask`` is false),
    and the bool ``[B, T]`` of counted tokens whose weight was truncated or masked."""
    with torch.no_grad():
        if mode.startswith("sequence"):
            log_weight = bounded(masked_sum(old_minus_rollout, mask, -1)).unsqueeze(-1).expand_as(old_minus_rollout)
        else:
            log_weight = bounded(old_minus_rollout)
        weight = torch.exp(log_weight)
        zero = torch.zeros((), dtype=weight.dtype, device=weight.device)
        inside = torch.ones_like(mask)
        if minimum is not None:
            inside = inside & (weight >= minimum)
        if maximum is not None:
            inside = inside & (weight <= maximum)
        if mode.endswith("truncate") and (minimum is not None or maximum is not None):
            weight = torch.clamp(weight, minimum, maximum)
        elif mode.endswith("mask"):
            weight = torch.where(inside, weight, zero)
        return torch.where(mask, weight, zero), ~inside & mask


def sequence_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` advantages: the given ones (``[B, 1]``) or the mean over each completion's counted tokens (``[B, T]``)."""
    if advantages.shape[-1] == 1 and mask.shape[-1] != 1:
        return advantages.squeeze(-1)
    return masked_mean(advantages.expand_as(mask), mask, -1)


def off_policy_keep(sampler_minus_policy: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """``[B, 1]`` bool: keep a completion unless its advantage is negative and its mean
    ``log pi_sampler - log pi_theta`` (detached) exceeds ``threshold``."""
    with torch.no_grad():
        divergence = masked_mean(sampler_minus_policy, mask, -1)
        keep = (sequence_advantages(advantages, mask) >= 0) | (divergence <= threshold)
        return keep.unsqueeze(-1)
