"""GSPO: one length-normalised importance ratio per completion, clipped per completion."""

from __future__ import annotations

from typing import Any, Literal

import torch

from swift_loss_zoo.policy._aggregation import LossAggMode
from swift_loss_zoo.policy._clipped import ClippedPolicyLoss
from swift_loss_zoo.policy._equivalents import liger_grpo, ms_swift_grpo, trl_grpo, verl_policy
from swift_loss_zoo.policy._estimators import bounded
from swift_loss_zoo.policy._group_policy import PolicyBatch
from swift_zoo.losses import require_choice
from swift_zoo.ops import masked_count, masked_sum


def sequence_log_ratio(batch: PolicyBatch) -> torch.Tensor:
    """``[B, 1]`` mean log-ratio of each completion's counted tokens (0 for a completion without any)."""
    lengths = masked_count(batch.mask, -1).clamp(min=1).to(batch.logps.dtype)
    return (masked_sum(batch.log_ratio, batch.mask, -1) / lengths).unsqueeze(-1)


class GSPOLoss(ClippedPolicyLoss):
    r"""Group Sequence Policy Optimization (Qwen team).

    .. math::
        s_i = \exp\Big(\frac{1}{|o_i|}\sum_t \big(\log\pi_\theta(o_{i,t})
              - \log\pi_\mathrm{old}(o_{i,t})\big)\Big),\qquad
        L_i = -\min\big(s_i A_i,\ \mathrm{clip}(s_i, 1-\varepsilon_\mathrm{low}, 1+\varepsilon_\mathrm{high}) A_i\big)
              + \beta\,\frac{1}{|o_i|}\sum_t \mathrm{k3}_{i,t}

    and :math:`\mathcal{L} = \frac{1}{N}\sum_i L_i`; the whole completion is kept or clipped together.
    The surrogate is written per token and aggregated with ``loss_agg_mode``; the default
    ``"seq-mean-token-mean"`` (unit: a **sequence**) gives exactly :math:`L_i` above. Two per-token
    ratios, set by ``importance_sampling_level`` (ms-swift's spelling):

    * ``"sequence"`` (default; TRL ``importance_sampling_level="sequence"``): :math:`s_i` itself on every
      token, its gradient spread over the completion's tokens through the mean;
    * ``"sequence_token"`` (GSPO-token, paper eq. 10-11; verl ``loss_mode="gspo"``):
      :math:`s_{i,t} = \mathrm{sg}(s_i)\,\pi_\theta(o_{i,t}) / \mathrm{sg}(\pi_\theta(o_{i,t}))`, value
      :math:`s_i`, gradient :math:`s_i\nabla\log\pi_\theta(o_{i,t})` on its own token.

    They agree (value and gradient) while advantages and token weights are uniform over a completion;
    per-token advantages, rollout weights or the high-entropy mask weigh each token's gradient in
    ``sequence_token`` and the whole completion's in ``sequence``. With ``use_bias_correction_kl`` the
    KL term is weighted by :math:`s_i` (TRL). The mean log-ratio is bounded at +-20 before ``exp``.

    Paper: Zheng et al., arXiv:2507.18071 (eq. 5-7, 10-11); its clipping ranges are tiny because a
    sequence ratio is a geometric mean: ``epsilon_low=3e-4``, ``epsilon_high=4e-4`` (the defaults).
    ``beta=0.0``; ``delta`` / ``dual_clip`` off; the shared options as
    :class:`~swift_loss_zoo.policy.GRPOLoss`. Metrics ``ratio_mean`` (of :math:`s_i`),
    ``clip_fraction_low/high``, ``clip_fraction`` (fractions of tokens), ``kl``.

    .. code-block:: yaml

        training_args:
          loss_type: gspo
          loss_kwargs: {epsilon_low: 3.0e-4, epsilon_high: 4.0e-4}
    """

    name = "gspo"
    reference = "arXiv:2507.18071"
    equivalents = (
        trl_grpo("grpo", sequence=True, settings="epsilon=3e-4, epsilon_high=4e-4", rows=True),
        verl_policy("gspo", "seq-mean-token-mean", zoo_kwargs={"importance_sampling_level": "sequence_token"},
                    settings="verl bounds the log-ratio at 10 from above"),
        ms_swift_grpo("grpo", zoo_kwargs={"beta": 0.04}, settings="--importance_sampling_level sequence (or "
                      "sequence_token with importance_sampling_level='sequence_token' here)"),
        liger_grpo("grpo", sequence=True, settings="epsilon_low=3e-4, epsilon_high=4e-4", rows=True),
    )

    def __init__(self, *, importance_sampling_level: Literal["sequence", "sequence_token"] = "sequence",
                 epsilon_low: float = 3e-4, epsilon_high: float = 4e-4,
                 loss_agg_mode: LossAggMode = "seq-mean-token-mean", **options: Any) -> None:
        super().__init__(epsilon_low=epsilon_low, epsilon_high=epsilon_high, loss_agg_mode=loss_agg_mode, **options)
        self.importance_sampling_level = require_choice(self.name, "importance_sampling_level",
                                                        importance_sampling_level, ("sequence", "sequence_token"))

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        sequence = bounded(sequence_log_ratio(batch))
        if self.importance_sampling_level == "sequence":
            ratio = torch.exp(sequence).expand_as(batch.logps)
        else:
            ratio = torch.exp(batch.logps - batch.logps.detach() + sequence.detach())
        return self.clipped_surrogate(batch, ratio)

    def kl_importance_weight(self, batch: PolicyBatch) -> torch.Tensor:
        return torch.exp(bounded(sequence_log_ratio(batch)))
