"""AlphaPO: SimPO with an alpha-shaped reward."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, trl
from swift_loss_zoo.reference_free._pairwise import PairLogps
from swift_loss_zoo.reference_free.simpo import SimPOLoss
from swift_zoo.losses import require_finite

# exp() arguments are capped so rewards and their gradients stay finite: e^50 ~ 5e21 fits float32
# (and bf16, whose range is float32's); fp16 gradients must fit 65504, hence the smaller cap there.
_EXPONENT_CAP = 50.0
_EXPONENT_CAP_FP16 = 8.0


def alpha_reward(mean_logps: torch.Tensor, alpha: float, cap: float = _EXPONENT_CAP) -> torch.Tensor:
    r"""``(1 - p^{-alpha}) / alpha`` with ``p = exp(mean_logps)``; ``mean_logps`` itself at ``alpha = 0``.

    Written as ``-expm1(-alpha * A) / alpha`` (accurate for small ``alpha``), with ``-alpha * A`` capped
    at ``cap`` so that very unlikely completions give a large finite reward instead of ``inf``.
    """
    if alpha == 0.0:
        return mean_logps
    return -torch.expm1(torch.clamp(-alpha * mean_logps, max=cap)) / alpha


class AlphaPOLoss(SimPOLoss):
    r"""AlphaPO (Gupta et al. 2025, arXiv:2501.03884): SimPO with the reward shape set by :math:`\alpha`.

    With the average log-probabilities :math:`\bar A = S/|y|` and :math:`p = e^{\bar A}` (the per-token
    geometric-mean probability), the reward is

    .. math::
        r_\alpha = \frac{1 - p^{-\alpha}}{\alpha} \qquad (r_0 = \bar A,\ \text{SimPO's reward})

    and with :math:`z = \beta(r_\alpha(y_c) - r_\alpha(y_r)) - \gamma`,
    :math:`\gamma = \texttt{gamma\_beta\_ratio}\cdot\beta`, the per-pair loss is
    :math:`-(1-\varepsilon)\log\sigma(z) - \varepsilon\log\sigma(-z)`, averaged over pairs (computed by
    :class:`SimPOLoss` with this reward). This is TRL's
    ``CPOTrainer`` with ``loss_type="alphapo"`` (= ``simpo`` with ``alpha`` set and ``cpo_alpha=0``).
    The exponent :math:`-\alpha\bar A` is capped at 50 (8 for float16 inputs) so very unlikely
    completions keep a finite reward and gradient. Pairs with an empty completion are not counted.

    Defaults: ``alpha=0.25``, ``beta=2.0``, ``gamma_beta_ratio=0.5``, ``label_smoothing=0.0``,
    ``sft_weight=0.0`` (optional per-token NLL of chosen, as in :class:`SimPOLoss`). ``alpha=0`` is SimPO.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (summed, differentiable),
    ``chosen_lengths``, ``rejected_lengths`` ``[B]`` (int). Metrics: ``chosen_reward``,
    ``rejected_reward`` (:math:`\beta r_\alpha`), ``reward_margin``, ``reward_accuracy``.

    .. code-block:: yaml

        training_args:
          loss_type: alphapo
          loss_kwargs: {alpha: 0.25, beta: 2.0, gamma_beta_ratio: 0.5}
    """

    name = "alphapo"
    reference = "arXiv:2501.03884"
    equivalents = (
        trl(call("CPOConfig", loss_type="simpo", alpha=0.25, beta=2.0, simpo_gamma=1.0, cpo_alpha=0.0)),
    )

    def __init__(
        self,
        *,
        alpha: float = 0.25,
        beta: float = 2.0,
        gamma_beta_ratio: float = 0.5,
        label_smoothing: float = 0.0,
        sft_weight: float = 0.0,
    ) -> None:
        alpha = require_finite(self.name, "alpha", alpha)
        super().__init__(beta=beta, gamma_beta_ratio=gamma_beta_ratio, label_smoothing=label_smoothing,
                         sft_weight=sft_weight)
        self.alpha = alpha

    def rewards(self, logps: PairLogps, input_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        cap = _EXPONENT_CAP_FP16 if input_dtype == torch.float16 else _EXPONENT_CAP
        return alpha_reward(logps.chosen_mean, self.alpha, cap), alpha_reward(logps.rejected_mean, self.alpha, cap)
