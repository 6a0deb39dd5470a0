"""GSPO: one length-normalised importance ratio per completion, clipped per completion."""

from __future__ import annotations

import torch

from swift_loss_zoo.policy._estimators import importance_ratio
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch, clip_fractions, prepare_policy_batch
from swift_zoo import UnitLosses
from swift_zoo.ops import masked_count, masked_mean, masked_sum


class GSPOLoss(GroupPolicyLoss):
    r"""Group Sequence Policy Optimization (Qwen team).

    .. math::
        s_i = \exp\Big(\frac{1}{|o_i|}\sum_t \big(\log\pi_\theta(o_{i,t})
              - \log\pi_\mathrm{old}(o_{i,t})\big)\Big),\qquad
        L_i = -\min\big(s_i A_i,\ \mathrm{clip}(s_i, 1-\varepsilon_\mathrm{low}, 1+\varepsilon_\mathrm{high}) A_i\big)
              + \beta\,\frac{1}{|o_i|}\sum_t \mathrm{k3}_{i,t}

    and :math:`\mathcal{L} = \frac{1}{N}\sum_i L_i`. Unit: a **sequence** (a completion with at least
    one counted token); the whole completion is kept or clipped together. The KL term (not in the
    paper) is averaged over the completion's tokens, as TRL does with ``importance_sampling_level=
    "sequence"`` and the GRPO normalisation; ``unbiased_kl`` multiplies it by :math:`s_i`, as TRL broadcasts
    the sequence weight onto the per-token KL. The mean log-ratio is bounded at +-20 before ``exp``.

    Paper: Zheng et al., arXiv:2507.18071 (eq. 5-7); its clipping ranges are tiny because a sequence
    ratio is a geometric mean: ``epsilon_low=3e-4``, ``epsilon_high=4e-4`` (the defaults). ``beta=0.0``.
    Inputs as :class:`GRPOLoss`; metrics ``ratio_mean`` (of :math:`s_i`), ``clip_fraction_low/high``,
    ``clip_fraction`` (fractions of completions), ``kl``.

    .. code-block:: yaml

        training_args:
          loss_type: gspo
          loss_kwargs: {epsilon_low: 3.0e-4, epsilon_high: 4.0e-4}
    """

    name = "gspo"
    reference = "arXiv:2507.18071"
    reduction_unit = "sequence"

    def __init__(self, *, epsilon_low: float = 3e-4, epsilon_high: float = 4e-4, beta: float = 0.0,
                 unbiased_kl: bool = False) -> None:
        super().__init__(epsilon_low=epsilon_low, epsilon_high=epsilon_high, beta=beta, unbiased_kl=unbiased_kl)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        batch = prepare_policy_batch(self, inputs, need_reference=self.beta > 0)
        counted = batch.mask.any(-1)
        lengths = masked_count(batch.mask, -1).clamp(min=1).to(batch.logps.dtype)
        mean_log_ratio = masked_sum(batch.log_ratio, batch.mask, -1) / lengths
        ratio = importance_ratio(mean_log_ratio)
        advantages = batch.advantages.squeeze(-1)
        low, high = 1.0 - self.epsilon_low, 1.0 + self.epsilon_high
        losses = -torch.minimum(ratio * advantages, torch.clamp(ratio, low, high) * advantages)
        self.record_metrics(ratio_mean=masked_mean(ratio.detach(), counted),
                            **clip_fractions(ratio.detach(), advantages, counted, low, high))
        if batch.kl is not None:
            self.record_metrics(kl=masked_mean(batch.kl, batch.mask))
            if self.beta > 0:
                kl = self.kl_penalty(batch.kl, mean_log_ratio.unsqueeze(-1))  # the sequence ratio on every token
                losses = losses + self.beta * masked_sum(kl, batch.mask, -1) / lengths
        return UnitLosses(losses, counted)

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:  # pragma: no cover - per_unit_loss overrides
        message = "gspo computes one loss per completion; see per_unit_loss"
        raise NotImplementedError(message)
