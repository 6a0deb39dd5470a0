"""GMPO: the clipped objective on the geometric mean of a completion's token ratios."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from swift_loss_zoo.policy._aggregation import SEQUENCE_MODES, LossAggMode
from swift_loss_zoo.policy._clipped import clip_range
from swift_loss_zoo.policy._equivalents import verl_policy
from swift_loss_zoo.policy._estimators import bounded
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch, PolicyWeights
from swift_loss_zoo.policy._off_policy import sequence_advantages
from swift_zoo.ops import masked_count, masked_mean, masked_sum

ROLLOUT_LOG_FLOOR = 1e-10


class GMPOLoss(GroupPolicyLoss):
    r"""Geometric-Mean Policy Optimization (verl ``loss_mode="geo_mean"``).

    Token log-ratios :math:`x_{i,t} = \log\pi_\theta(o_{i,t}) - \log\pi_\mathrm{old}(o_{i,t})` are clipped
    in log space on the side the advantage's sign makes dangerous, then averaged:

    .. math::
        \tilde x_{i,t} = \mathrm{sgn}(A_i)\,\min\big(\mathrm{sgn}(A_i)\,x_{i,t},\
                         \mathrm{sgn}(A_i)\,\mathrm{clip}(x_{i,t}, -\varepsilon_\mathrm{low}, \varepsilon_\mathrm{high})\big),\qquad
        L_i = -A_i\,\exp\Big(\frac{1}{|o_i|}\sum_t \tilde x_{i,t}\Big)

    so the objective is the geometric mean of the token ratios, less sensitive to one outlier token
    than GRPO's arithmetic mean. Unit: a **sequence**; :math:`\mathcal{L} = \frac1N\sum_i L_i` over
    completions with a counted token (verl takes the mean over all ``B`` rows, all-padding rows
    included). Per-token advantages :math:`A_{i,t}` set the clipping side of each token by their sign and
    enter :math:`L_i` as their mean over the completion, as in verl. The KL and
    entropy terms are per token, aggregated with ``loss_agg_mode`` (a ``seq-*`` mode, default
    ``seq-mean-token-mean``) and added to each completion's :math:`L_i`. Options acting on tokens:
    the high-entropy mask restricts the mean to the kept tokens; rollout weights enter as their
    geometric mean over the completion (verl); the off-policy mask drops :math:`L_i`.

    Paper: Zhao et al., arXiv:2507.20673, with its clipping range :math:`(e^{-0.4}, e^{0.4})`:
    ``epsilon_low=0.4``, ``epsilon_high=0.4`` (log-space); ``beta=0.0``; the shared options as
    :class:`~swift_loss_zoo.policy.GRPOLoss`. Metrics ``ratio_mean`` (of the geometric mean),
    ``clip_fraction_low/high`` (tokens clipped with a negative / positive advantage).

    .. code-block:: yaml

        training_args:
          loss_type: gmpo
          loss_kwargs: {epsilon_low: 0.4, epsilon_high: 0.4}
    """

    name = "gmpo"
    reference = "arXiv:2507.20673"
    equivalents = (
        verl_policy("geo_mean", "seq-mean-token-mean",
                    settings="clip_ratio=0.4 (log space); verl averages the policy term over all B rows, all-padding "
                    "rows included; its loss_agg_mode then aggregates only the KL and entropy terms"),
    )
    loss_agg_modes: ClassVar[tuple[str, ...]] = SEQUENCE_MODES

    def __init__(self, *, epsilon_low: float = 0.4, epsilon_high: float = 0.4,
                 loss_agg_mode: LossAggMode = "seq-mean-token-mean", **options: Any) -> None:
        super().__init__(loss_agg_mode=loss_agg_mode, **options)
        self.epsilon_low, self.epsilon_high = clip_range(self.name, epsilon_low, epsilon_high)

    def weighted_policy_losses(self, batch: PolicyBatch, weights: PolicyWeights) -> torch.Tensor:
        return torch.zeros_like(batch.logps)

    def sequence_policy_losses(self, batch: PolicyBatch, weights: PolicyWeights) -> torch.Tensor:
        tokens = batch.mask if weights.keep_token is None else weights.keep_token
        sign = torch.sign(batch.advantages)
        log_ratio = bounded(batch.log_ratio)
        clipped = torch.clamp(log_ratio, -self.epsilon_low, self.epsilon_high)
        chosen = sign * torch.minimum(sign * log_ratio, sign * clipped)
        lengths = masked_count(tokens, -1).clamp(min=1).to(chosen.dtype)
        ratio = torch.exp(masked_sum(chosen.expand_as(tokens), tokens, -1) / lengths)
        advantages = sequence_advantages(batch.advantages, batch.mask)
        losses = -advantages * ratio
        if weights.rollout is not None:
            log_weights = torch.log(weights.rollout + ROLLOUT_LOG_FLOOR)
            counts = masked_count(batch.mask, -1).clamp(min=1).to(chosen.dtype)
            losses = losses * torch.exp(masked_sum(log_weights, batch.mask, -1) / counts)
        if weights.keep_sequence is not None:
            losses = torch.where(weights.keep_sequence.squeeze(-1), losses, torch.zeros_like(losses))
        with torch.no_grad():
            moved = (log_ratio != clipped) & batch.mask
            advantage = batch.advantages.expand_as(batch.mask)
            counted = batch.mask.any(-1)
            self.record_metrics(ratio_mean=masked_mean(ratio, counted),
                                clip_fraction_low=masked_mean((moved & (advantage < 0)).float(), batch.mask),
                                clip_fraction_high=masked_mean((moved & (advantage > 0)).float(), batch.mask))
        return torch.where(batch.mask.any(-1), losses, torch.zeros_like(losses))
