"""A per-token KL penalty towards a reference policy (k1, k2, k3, abs, k1+, k3+ estimators)."""

from __future__ import annotations

from typing import Literal

import torch

from swift_loss_zoo.policy._aggregation import LOSS_AGG_MODES, LossAggMode, aggregate, count_units, unit_of
from swift_loss_zoo.policy._equivalents import VERL
from swift_loss_zoo.policy._estimators import KL_ESTIMATORS, kl_estimate
from swift_loss_zoo.policy._inputs import COMPLETION_MASK, PER_TOKEN_LOGPS, group_policy_example
from swift_zoo import BaseLoss, Equivalence, LossExample, UnitLosses
from swift_zoo.losses import TensorInput, require_choice, require_positive
from swift_zoo.ops import upcast


class KLPenaltyLoss(BaseLoss):
    r"""Estimated :math:`\mathrm{KL}(\pi_\theta \| \pi_\mathrm{ref})` on tokens sampled from :math:`\pi_\theta`.

    With :math:`x_t = \log\pi_\mathrm{ref}(o_t) - \log\pi_\theta(o_t)` (Schulman, "Approximating KL
    Divergence", 2020, http://joschu.net/blog/kl-approx.html):

    .. math::
        \mathrm{k1} = -x,\qquad \mathrm{k2} = \tfrac12 x^2,\qquad \mathrm{k3} = (e^{x} - 1) - x,\qquad
        \mathrm{abs} = |x|

    and :math:`\mathcal{L} = \sum_t k_t / N` over completion tokens (unit: a **token**; verl's other
    ``loss_agg_mode`` values are options, as for the policy losses). k1 is
    unbiased but noisy and can be negative; k2 is biased, low-variance, and its gradient is the
    gradient of the true reverse KL in expectation; k3 is unbiased, non-negative, low-variance (the
    GRPO penalty; :math:`x` bounded at +-20 before ``exp``). As a *loss* term none of these is an
    unbiased estimate of the reverse-KL gradient except k2 (see TRL issue #4967); k1 belongs in the
    reward. ``k1+`` / ``k3+`` take the value of k1 / k3 and the gradient of k2 (straight-through, verl's
    ``kl_loss_type="k3+"``). Add it to a policy loss with a weight through a composite loss, or use
    the policy losses' own ``beta`` / ``kl_estimator``.

    Reference: arXiv:1707.06347 (PPO's KL penalty) with the estimators of Schulman's note.
    Defaults: ``estimator="k3"``, ``loss_agg_mode="token-mean"``, ``loss_scale_factor=None``. Inputs: ``per_token_logps`` ``[B, T]`` (differentiable),
    ``ref_per_token_logps`` ``[B, T]``, ``completion_mask`` ``[B, T]``.

    .. code-block:: yaml

        training_args:
          loss_type: kl_penalty
          loss_kwargs: {estimator: k3}
    """

    name = "kl_penalty"
    reference = "arXiv:1707.06347"
    equivalents = tuple(
        Equivalence("verl", f"kl_penalty(logprob, ref_logprob, kl_penalty={spelling!r}) aggregated by agg_loss", VERL,
                    {"estimator": estimator},
                    "actor.use_kl_loss=True, actor.kl_loss_type as named; loss_agg_mode as here"
                    + ("; equal while the estimate stays below 10 (verl clamps k3 to [-10, 10])"
                       if estimator in ("k3", "k3+") else ""))
        for estimator, spelling in (("k1", "kl"), ("k2", "mse"), ("k3", "low_var_kl"), ("abs", "abs"),
                                    ("k1+", "k1+"), ("k3+", "k3+"))
    )
    reduction_unit = "token"
    inputs = (
        PER_TOKEN_LOGPS,
        TensorInput("ref_per_token_logps", ("B", "T"), masked_by="completion_mask", doc="log pi_ref(token)"),
        COMPLETION_MASK,
    )

    def __init__(self, *, estimator: Literal["k1", "k2", "k3", "abs", "k1+", "k3+"] = "k3",
                 loss_agg_mode: LossAggMode = "token-mean", loss_scale_factor: float | None = None) -> None:
        super().__init__()
        self.estimator = require_choice(self.name, "estimator", estimator, KL_ESTIMATORS)
        self.loss_agg_mode = require_choice(self.name, "loss_agg_mode", loss_agg_mode, LOSS_AGG_MODES)
        self.loss_scale_factor = None if loss_scale_factor is None else require_positive(
            self.name, "loss_scale_factor", loss_scale_factor)
        self.reduction_unit = unit_of(self.loss_agg_mode)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        mask = inputs["completion_mask"] != 0
        logps = upcast(inputs["per_token_logps"])
        zero = torch.zeros((), dtype=logps.dtype, device=logps.device)
        x = torch.where(mask, inputs["ref_per_token_logps"].to(logps.dtype) - logps, zero)
        estimate = torch.where(mask, kl_estimate(x, self.estimator), zero)
        return aggregate(estimate, mask, self.loss_agg_mode, self.loss_scale_factor)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        return count_units(self.validate(model_outputs, labels)["completion_mask"] != 0, self.loss_agg_mode)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        example = group_policy_example(batch_size=batch_size, generator=generator, dtype=dtype, device=device)
        keys = ("per_token_logps", "ref_per_token_logps", "completion_mask")
        return LossExample({k: example.model_outputs[k] for k in keys})
