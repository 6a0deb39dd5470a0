"""CISPO: REINFORCE with a clipped, detached importance-sampling weight on every token."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from swift_loss_zoo.policy._clipped import clip_range
from swift_loss_zoo.policy._equivalents import liger_grpo, ms_swift_grpo, trl_grpo, verl_policy
from swift_loss_zoo.policy._estimators import importance_ratio
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch
from swift_zoo.ops import masked_mean


class CISPOLoss(GroupPolicyLoss):
    r"""Clipped IS-weight Policy Optimization (MiniMax-M1).

    .. math::
        \hat r_{i,t} = \mathrm{clip}(\rho_{i,t},\ 1-\varepsilon_\mathrm{low},\ 1+\varepsilon_\mathrm{high}),\qquad
        L_{i,t} = -\,\mathrm{sg}(\hat r_{i,t})\,A_i\,\log\pi_\theta(o_{i,t}) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{\sum_i |o_i|}\sum_{i,t} L_{i,t}

    (:math:`\mathrm{sg}` = stop-gradient.) Unlike PPO/GRPO clipping, no token's gradient is dropped:
    the weight is bounded, the gradient :math:`-\hat r A\nabla\log\pi_\theta` always flows. Unit: a
    **token** (the paper's and TRL's normalisation; pass ``num_items_in_batch``).

    Paper: MiniMax-M1, arXiv:2506.13585 (sec. 3.1): the weight is clipped as
    :math:`\mathrm{clip}(r, 1-\varepsilon^{IS}_{low}, 1+\varepsilon^{IS}_{high})` and the lower bound is
    switched off. So ``epsilon_low=None`` (no lower bound) by default and ``epsilon_high=4.0``
    (cap 5.0, the ``epsilon_high=5.0`` TRL recommends for CISPO). **Spelling differs from TRL /
    ms-swift**: their ``epsilon_high`` for ``cispo`` is the absolute cap (``min(rho, epsilon_high)``),
    i.e. ``1 + epsilon_high`` here. ``beta=0.0``; the shared options as
    :class:`~swift_loss_zoo.policy.GRPOLoss` (``loss_agg_mode`` default ``"token-mean"``). The loss value (``-A log pi``) is not a
    surrogate of the return; only its gradient is meaningful. Inputs as :class:`GRPOLoss`; metrics
    ``ratio_mean``, ``clip_fraction_low/high`` (weight clipped below / above, whatever the sign of A;
    TRL's ``cispo_clip_ratio`` counts only A > 0), ``clip_fraction`` (either).

    .. code-block:: yaml

        training_args:
          loss_type: cispo
          loss_kwargs: {epsilon_high: 4.0}
    """

    name = "cispo"
    reference = "arXiv:2506.13585"
    equivalents = (
        trl_grpo("cispo", settings="TRL's epsilon_high is the cap, 1 + epsilon_high here (5.0 for the default 4.0); "
                 "no lower bound (epsilon_low=None here); num_items_in_batch as TRL passes"),
        verl_policy("cispo", "token-mean", zoo_kwargs={"epsilon_low": 0.2, "epsilon_high": 0.2},
                    settings="verl always bounds the weight below, at 1 - clip_ratio_low"),
        ms_swift_grpo("cispo", zoo_kwargs={"beta": 0.04}, settings="ms-swift's epsilon_high is the cap"),
        liger_grpo("cispo", settings="Liger's epsilon_high is the cap, 1 + epsilon_high here"),
    )
    reduction_unit = "token"
    conformance_exemptions: ClassVar[dict[str, str]] = {  # read by swift_zoo.testing
        "check_gradcheck": (
            "the importance weight is detached by design (stop-gradient in the paper): the gradient is "
            "-clip(rho) A grad log pi, not the derivative of the value, so finite differences disagree"
        ),
    }

    def __init__(self, *, epsilon_low: float | None = None, epsilon_high: float = 4.0, **options: Any) -> None:
        super().__init__(**options)
        self.epsilon_low, self.epsilon_high = clip_range(self.name, epsilon_low, epsilon_high)

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        ratio = importance_ratio(batch.log_ratio).detach()
        low = None if self.epsilon_low is None else 1.0 - self.epsilon_low
        high = 1.0 + self.epsilon_high
        weight = torch.clamp(ratio, low, high)
        # A clipped weight damps the token's gradient whatever the sign of A, so count every one.
        with torch.no_grad():
            below = ratio < low if low is not None else torch.zeros_like(batch.mask)
            above = ratio > high
            count = batch.mask.sum().clamp(min=1)
            self.record_metrics(
                ratio_mean=masked_mean(ratio, batch.mask),
                clip_fraction_low=(below & batch.mask).sum() / count,
                clip_fraction_high=(above & batch.mask).sum() / count,
                clip_fraction=((below | above) & batch.mask).sum() / count,
            )
        losses = -weight * batch.advantages * batch.logps
        return torch.where(batch.mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device))
