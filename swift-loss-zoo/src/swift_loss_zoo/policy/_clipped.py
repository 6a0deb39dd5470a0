r"""``ClippedPolicyLoss``: PPO's clipped surrogate with two-sided and dual clipping, shared by the GRPO family.

Per token, with :math:`\rho` the importance ratio and :math:`A` the advantage (per completion or per token):

.. math::
    \ell = -\min\big(\min(\rho, \delta)\,A,\ \mathrm{clip}(\rho, 1-\varepsilon_\mathrm{low},
           1+\varepsilon_\mathrm{high})\,A\big),\qquad
    \ell \leftarrow \min(\ell, -c\,A)\ \text{ where } A < 0

* ``delta`` (:math:`\delta`, INTELLECT-2 two-sided clipping, arXiv:2505.07291; TRL ``delta``): caps
  the unclipped ratio, bounding the loss of a token whose ratio is huge while its advantage is
  negative. Allowed down to ``1 + epsilon_high`` (below that it would clip inside the trust region).
* ``dual_clip`` (:math:`c`, Ye et al. "Mastering Complex Control in MOBA Games", arXiv:1912.09729;
  verl ``clip_ratio_c``, default 3 there; OpenRLHF ``dual_clip``): for a negative advantage the loss
  is at most :math:`-cA`. Must exceed 1. For :math:`\delta = c \ge 1 + \varepsilon_\mathrm{high}` the
  two give the same loss and gradient.
"""

from __future__ import annotations

from typing import Any

import torch

from swift_loss_zoo.policy._estimators import importance_ratio
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch
from swift_zoo import ConfigError
from swift_zoo.losses import require_in_range, require_positive
from swift_zoo.ops import masked_count, masked_mean


def clip_fractions(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                   low: float | None, high: float | None) -> dict[str, torch.Tensor]:
    """Fractions of counted units whose clipped branch is active (TRL's ``clip_ratio/*``).

    ``low``: ratio below ``low`` with a negative advantage; ``high``: above ``high`` with a
    positive advantage; ``region``: either. A ``None`` bound never clips.
    """
    with torch.no_grad():
        advantages = advantages.expand_as(ratio)
        below = (ratio < low) & (advantages < 0) if low is not None else torch.zeros_like(mask)
        above = (ratio > high) & (advantages > 0) if high is not None else torch.zeros_like(mask)
        below, above = below & mask, above & mask
        count = masked_count(mask).clamp(min=1)
        return {
            "clip_fraction_low": below.sum() / count,
            "clip_fraction_high": above.sum() / count,
            "clip_fraction": (below | above).sum() / count,
        }


def clip_range(owner: str, epsilon_low: float | None, epsilon_high: float | None) -> tuple[float | None, float | None]:
    """Validated ``(epsilon_low, epsilon_high)``: ``epsilon_low`` in (0, 1), ``epsilon_high`` > 0, ``None`` = no bound."""
    low = None if epsilon_low is None else require_in_range(
        owner, "epsilon_low", epsilon_low, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    high = None if epsilon_high is None else require_positive(owner, "epsilon_high", epsilon_high)
    return low, high


def _bound(owner: str, key: str, value: float | None, low: float, expected: str) -> float | None:
    if value is None:
        return None
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not low <= value < float("inf") or (key == "dual_clip" and value == low):
        message = f"{owner}: {key} must be None or {expected}, got {value!r}"
        raise ConfigError(message, key=key, expected=f"None or {expected}", found=value)
    return float(value)


class ClippedPolicyLoss(GroupPolicyLoss):
    """A policy loss whose policy term is the clipped surrogate (see the module docstring); not registered."""

    def __init__(self, *, epsilon_low: float = 0.2, epsilon_high: float = 0.2, delta: float | None = None,
                 dual_clip: float | None = None, **options: Any) -> None:
        super().__init__(**options)
        name = self.display_name
        self.epsilon_low, self.epsilon_high = clip_range(name, epsilon_low, epsilon_high)
        bound = 1.0 + (self.epsilon_high or 0.0)
        self.delta = _bound(name, "delta", delta, bound, f"a float >= 1 + epsilon_high = {bound:g}")
        self.dual_clip = _bound(name, "dual_clip", dual_clip, 1.0, "a float > 1")

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        return self.clipped_surrogate(batch, importance_ratio(batch.log_ratio))

    def clipped_surrogate(self, batch: PolicyBatch, ratio: torch.Tensor) -> torch.Tensor:
        """The clipped surrogate of ``ratio`` (``[B, T]``) per token, 0 where ``batch.mask`` is false."""
        low = None if self.epsilon_low is None else 1.0 - self.epsilon_low
        high = None if self.epsilon_high is None else 1.0 + self.epsilon_high
        advantages = batch.advantages
        clipped = torch.clamp(ratio, low, high)
        unclipped = ratio if self.delta is None else torch.clamp(ratio, max=self.delta)
        losses = -torch.minimum(unclipped * advantages, clipped * advantages)
        metrics = {"ratio_mean": masked_mean(ratio.detach(), batch.mask),
                   **clip_fractions(ratio.detach(), advantages, batch.mask, low, high)}
        if self.dual_clip is not None:
            cap = -self.dual_clip * advantages
            capped = (advantages < 0) & (losses > cap)
            losses = torch.where(capped, cap.expand_as(losses), losses)
            metrics["dual_clip_fraction"] = masked_mean(capped.detach().to(losses.dtype), batch.mask)
        self.record_metrics(**metrics)
        return torch.where(batch.mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device))
