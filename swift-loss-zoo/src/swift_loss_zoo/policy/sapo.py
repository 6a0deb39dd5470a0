"""SAPO: a smooth, temperature-controlled gate instead of hard ratio clipping."""

from __future__ import annotations

from typing import Any

import torch

from swift_loss_zoo.policy._aggregation import LossAggMode
from swift_loss_zoo.policy._equivalents import liger_grpo, ms_swift_grpo, trl_grpo, verl_policy
from swift_loss_zoo.policy._estimators import importance_ratio
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch
from swift_zoo.losses import require_positive
from swift_zoo.ops import masked_mean


class SAPOLoss(GroupPolicyLoss):
    r"""Soft Adaptive Policy Optimization (Qwen team).

    .. math::
        f_\tau(\rho) = \frac{4}{\tau}\,\sigma\big(\tau(\rho - 1)\big),\qquad
        L_{i,t} = -f_{\tau_i}(\rho_{i,t})\,A_i + \beta\,\mathrm{k3}_{i,t},\qquad
        \tau_i = \begin{cases}\tau_+ & A_i > 0\\ \tau_- & \text{otherwise}\end{cases}

    and :math:`\mathcal{L} = \frac{1}{N}\sum_i \frac{1}{|o_i|}\sum_t L_{i,t}` (unit: a **sequence**,
    the GRPO normalisation, as the paper and TRL). :math:`\partial f/\partial\rho = 4\sigma(1-\sigma)`
    is 1 at :math:`\rho = 1` (the unclipped policy gradient on-policy) and decays smoothly as the
    ratio moves away, faster for negative advantages (:math:`\tau_- > \tau_+`). There is no hard
    clipping range, hence no ``epsilon_*`` hyperparameters. The shared options (KL, aggregation,
    rollout correction, masks, entropy bonus) as :class:`~swift_loss_zoo.policy.GRPOLoss`.

    Paper: Gao et al., arXiv:2511.20347. Defaults as the paper / TRL (``sapo_temperature_pos``,
    ``sapo_temperature_neg``): ``temperature_pos=1.0``, ``temperature_neg=1.05``, ``beta=0.0``.
    Inputs as :class:`GRPOLoss`; metrics ``ratio_mean``, ``gate_gradient_mean`` (mean of
    :math:`4\sigma(1-\sigma)`, the gradient scale relative to the unclipped one), ``kl``.

    .. code-block:: yaml

        training_args:
          loss_type: sapo
          loss_kwargs: {temperature_pos: 1.0, temperature_neg: 1.05}
    """

    name = "sapo"
    reference = "arXiv:2511.20347"
    equivalents = (
        trl_grpo("sapo", settings="sapo_temperature_pos / _neg = temperature_pos / _neg", rows=True),
        verl_policy("sapo", "seq-mean-token-mean", settings="tau_pos / tau_neg = temperature_pos / temperature_neg"),
        ms_swift_grpo("sapo", zoo_kwargs={"beta": 0.04}, settings="tau_pos / tau_neg"),
        liger_grpo("sapo", rows=True),
    )

    def __init__(self, *, temperature_pos: float = 1.0, temperature_neg: float = 1.05,
                 loss_agg_mode: LossAggMode = "seq-mean-token-mean", **options: Any) -> None:
        temperature_pos = require_positive(self.name, "temperature_pos", temperature_pos)
        temperature_neg = require_positive(self.name, "temperature_neg", temperature_neg)
        super().__init__(loss_agg_mode=loss_agg_mode, **options)
        self.temperature_pos, self.temperature_neg = temperature_pos, temperature_neg

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        ratio = importance_ratio(batch.log_ratio)
        positive = torch.tensor(self.temperature_pos, dtype=ratio.dtype, device=ratio.device)
        negative = torch.tensor(self.temperature_neg, dtype=ratio.dtype, device=ratio.device)
        tau = torch.where(batch.advantages > 0, positive, negative)
        gate = torch.sigmoid(tau * (ratio - 1.0))
        with torch.no_grad():
            gate_gradient = (4.0 * gate * (1.0 - gate)).expand_as(ratio)
            self.record_metrics(ratio_mean=masked_mean(ratio, batch.mask),
                                gate_gradient_mean=masked_mean(gate_gradient, batch.mask))
        losses = -(4.0 / tau) * gate * batch.advantages
        return torch.where(batch.mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device))
