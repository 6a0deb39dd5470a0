"""VESPO: a Gamma-shaped, detached weight of the sequence importance ratio on REINFORCE."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from swift_loss_zoo.policy._equivalents import liger_grpo, trl_grpo
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch, PolicyWeights
from swift_zoo import ConfigError
from swift_zoo.losses import require_non_negative, require_positive
from swift_zoo.ops import masked_mean, masked_sum

LOG_WEIGHT_FLOOR = math.log(1e-8)
LOG_WEIGHT_CEILING = 20.0


class VESPOLoss(GroupPolicyLoss):
    r"""Variational Sequence-Level Soft Policy Optimization.

    With the sequence importance ratio :math:`w_i = \prod_t \pi_\theta(o_{i,t}) / \pi_\mathrm{old}(o_{i,t})`
    (a product, not GSPO's geometric mean; its log bounded to :math:`[\log 10^{-8}, 20]`),

    .. math::
        \varphi(w) = e^{\lambda}\, w^{k}\, e^{-\lambda w}\ \ (\varphi(1) = 1),\qquad
        L_{i,t} = -\,\mathrm{sg}\big(\varphi_{k,\lambda}(w_i)\big)\,A_i\,\log\pi_\theta(o_{i,t}) + \beta\,\mathrm{k3}_{i,t}

    with :math:`(k, \lambda) = (k_+, \lambda_+)` when :math:`A \ge 0` and :math:`(k_-, \lambda_-)`
    otherwise (:math:`\mathrm{sg}` = stop-gradient). The Gamma-shaped weight replaces hard clipping: it
    is largest near :math:`w = 1` and decays smoothly for sequences that moved far, asymmetrically
    by the sign of the advantage. Only the gradient :math:`-\varphi A \nabla\log\pi_\theta` is
    meaningful, not the value. Unit: a **token** (``loss_agg_mode="token-mean"``, TRL's DAPO
    normalisation). With ``rollout_correction`` in a ``token_*`` mode, the rollout weights enter
    :math:`w_i` (the sum of their logs, each bounded below by :math:`\log 10^{-8}`) instead of
    multiplying the loss, as TRL does; the ``sequence_*`` modes are refused (TRL refuses them too).

    Paper: arXiv:2602.10693. Defaults as TRL ``GRPOConfig`` (``vespo_k_pos`` ...): ``k_pos=2.0``,
    ``lambda_pos=3.0``, ``k_neg=3.0``, ``lambda_neg=2.0``; ``beta=0.0``; the shared options as
    :class:`~swift_loss_zoo.policy.GRPOLoss`. Inputs as GRPO; metric ``phi_mean``.

    .. code-block:: yaml

        training_args:
          loss_type: vespo
          loss_kwargs: {k_pos: 2.0, lambda_pos: 3.0, k_neg: 3.0, lambda_neg: 2.0}
    """

    name = "vespo"
    reference = "arXiv:2602.10693"
    equivalents = (
        trl_grpo("vespo", settings="vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg = k_pos, lambda_pos, "
                 "k_neg, lambda_neg; num_items_in_batch as TRL passes"),
        liger_grpo("vespo", settings="num_items_in_batch as TRL"),
    )
    conformance_exemptions: ClassVar[dict[str, str]] = {  # read by swift_zoo.testing
        "check_gradcheck": (
            "the Gamma weight is detached by design (as in the paper and TRL): the gradient is "
            "-phi A grad log pi, not the derivative of the value, so finite differences disagree"
        ),
    }

    def __init__(self, *, k_pos: float = 2.0, lambda_pos: float = 3.0, k_neg: float = 3.0, lambda_neg: float = 2.0,
                 **options: Any) -> None:
        super().__init__(**options)
        self.k_pos = require_non_negative(self.name, "k_pos", k_pos)
        self.lambda_pos = require_positive(self.name, "lambda_pos", lambda_pos)
        self.k_neg = require_non_negative(self.name, "k_neg", k_neg)
        self.lambda_neg = require_positive(self.name, "lambda_neg", lambda_neg)
        if self.rollout_correction is not None and self.rollout_correction.startswith("sequence"):
            expected = "None, 'token_truncate' or 'token_mask'"
            message = (
                f"vespo: rollout_correction must be {expected} (the token weights enter the sequence ratio), "
                f"got {self.rollout_correction!r}"
            )
            raise ConfigError(message, key="rollout_correction", expected=expected, found=self.rollout_correction)

    def gamma_weights(self, batch: PolicyBatch, rollout: torch.Tensor | None) -> torch.Tensor:
        """Detached ``phi(w)``, ``[B, 1]`` (or ``[B, T]`` for per-token advantages)."""
        with torch.no_grad():
            log_ratio = torch.clamp(batch.log_ratio, -LOG_WEIGHT_CEILING, LOG_WEIGHT_CEILING)
            log_w = masked_sum(log_ratio, batch.mask, -1).unsqueeze(-1)
            if rollout is not None:
                log_rollout = torch.clamp(torch.log(rollout), LOG_WEIGHT_FLOOR, LOG_WEIGHT_CEILING)
                log_w = log_w + masked_sum(log_rollout, batch.mask, -1).unsqueeze(-1)
            log_w = torch.clamp(log_w, LOG_WEIGHT_FLOOR, LOG_WEIGHT_CEILING)
            non_negative = batch.advantages >= 0
            k = torch.where(non_negative, self.k_pos, self.k_neg).to(log_w.dtype)
            lam = torch.where(non_negative, self.lambda_pos, self.lambda_neg).to(log_w.dtype)
            phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
            return torch.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0)

    def weighted_policy_losses(self, batch: PolicyBatch, weights: PolicyWeights) -> torch.Tensor:
        phi = self.gamma_weights(batch, weights.rollout)
        self.record_metrics(phi_mean=masked_mean(phi.expand_as(batch.mask), batch.mask))
        losses = -phi * batch.advantages * batch.logps
        losses = torch.where(batch.mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device))
        return weights.apply(losses, rollout=False)
