"""Clip-Cov: PPO clipping plus a detached gradient on a few high-covariance tokens."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from swift_loss_zoo.policy._clipped import ClippedPolicyLoss
from swift_loss_zoo.policy._covariance import selection_size, token_covariance, top_tokens
from swift_loss_zoo.policy._equivalents import verl_policy
from swift_loss_zoo.policy._estimators import importance_ratio
from swift_loss_zoo.policy._group_policy import PolicyBatch
from swift_zoo import ConfigError
from swift_zoo.losses import require_finite, require_in_range
from swift_zoo.ops import masked_mean


class ClipCovLoss(ClippedPolicyLoss):
    r"""Clip-Cov (Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models").

    PPO's clipped surrogate :math:`\ell_{i,t}` (see :class:`~swift_loss_zoo.policy.BNPOLoss`), with the
    tokens of a set :math:`\mathcal{C}` removed from the loss (value and gradient):

    .. math::
        L_{i,t} = \ell_{i,t}\,[\,(i,t) \notin \mathcal{C}\,] + \beta\,\mathrm{k3}_{i,t}

    :math:`\mathcal{C}` holds up to ``max(1, int(clip_cov_ratio * #tokens))`` counted tokens whose
    covariance :math:`(A - \bar A)(\log\pi_\theta - \overline{\log\pi_\theta})` lies in
    ``(clip_cov_lb, clip_cov_ub)`` and whose PPO clip is not already active. **Selection differs from
    the paper and verl**: they draw :math:`\mathcal{C}` uniformly at random among those candidates; a
    loss here must be deterministic (same inputs, same loss and gradient), so it takes the candidates
    with the largest covariance. The two agree whenever there are at most that many candidates.
    Unit: a **token** (verl ``loss_mode="clip_cov"``, ``token-mean``); ``batch_dependent``, as the
    selection depends on the call's tokens.

    Paper: arXiv:2505.22617. Defaults as verl ``policy_loss``: ``clip_cov_ratio=0.0002``,
    ``clip_cov_lb=1.0``, ``clip_cov_ub=5.0``, ``epsilon_low=epsilon_high=0.2``; ``beta=0.0``; the
    shared options as :class:`~swift_loss_zoo.policy.GRPOLoss`. Metrics as BNPO plus
    ``clip_cov_fraction``.

    .. code-block:: yaml

        training_args:
          loss_type: clip_cov
          loss_kwargs: {clip_cov_ratio: 0.0002, clip_cov_lb: 1.0, clip_cov_ub: 5.0}
    """

    name = "clip_cov"
    reference = "arXiv:2505.22617"
    equivalents = (
        verl_policy("clip_cov", "token-mean",
                    settings="policy_loss.clip_cov_ratio / clip_cov_lb / clip_cov_ub as here",
                    differs="verl draws the removed tokens uniformly at random among the candidates (torch.randperm); "
                    "the zoo takes the candidates with the largest covariance, so the loss is deterministic. The two "
                    "agree when there are at most max(1, int(clip_cov_ratio * tokens)) candidates"),
    )
    batch_dependent: ClassVar[str] = (
        "the detached tokens are chosen among the call's tokens by covariance with means over the call, and their "
        "number is a fraction of the call's tokens, so a micro-batch split selects differently")

    def __init__(self, *, clip_cov_ratio: float = 0.0002, clip_cov_lb: float = 1.0, clip_cov_ub: float = 5.0,
                 **options: Any) -> None:
        super().__init__(**options)
        self.clip_cov_ratio = require_in_range(self.name, "clip_cov_ratio", clip_cov_ratio, 0.0, 1.0,
                                               low_inclusive=False)
        self.clip_cov_lb = require_finite(self.name, "clip_cov_lb", clip_cov_lb)
        self.clip_cov_ub = require_finite(self.name, "clip_cov_ub", clip_cov_ub)
        if self.clip_cov_ub <= self.clip_cov_lb:
            expected = f"> clip_cov_lb = {self.clip_cov_lb:g}"
            message = f"clip_cov: clip_cov_ub must be {expected}, got {clip_cov_ub!r}"
            raise ConfigError(message, key="clip_cov_ub", expected=expected, found=clip_cov_ub)

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        ratio = importance_ratio(batch.log_ratio)
        losses = self.clipped_surrogate(batch, ratio)
        with torch.no_grad():
            plain = -batch.advantages * ratio
            low = None if self.epsilon_low is None else 1.0 - self.epsilon_low
            high = None if self.epsilon_high is None else 1.0 + self.epsilon_high
            clipped = -batch.advantages * torch.clamp(ratio, low, high)
            covariance = token_covariance(batch.advantages, batch.logps, batch.mask)
            candidates = (covariance > self.clip_cov_lb) & (covariance < self.clip_cov_ub) & batch.mask \
                & ~(clipped > plain)
            chosen = top_tokens(covariance, candidates, selection_size(batch.mask, self.clip_cov_ratio))
            self.record_metrics(clip_cov_fraction=masked_mean(chosen.float(), batch.mask))
        return torch.where(chosen, torch.zeros((), dtype=losses.dtype, device=losses.device), losses)

    @classmethod
    def example_kwargs(cls) -> dict:
        # a band the small example's covariances fall in, so some tokens are really detached
        return {**super().example_kwargs(), "clip_cov_ratio": 0.2, "clip_cov_lb": 0.0, "clip_cov_ub": 5.0}
