"""AlphaPO: SimPO with an alpha-shaped reward."""

from __future__ import annotations

import math

import torch

from swift_loss_zoo._equivalents import call, trl
from swift_loss_zoo.reference_free._pairwise import PairLogps
from swift_loss_zoo.reference_free.simpo import SimPOLoss
from swift_zoo.losses import require_finite

#: Past this exponent the reward continues linearly (see :func:`alpha_reward`). One value for every input
#: dtype: the reward is computed in float32 whatever the inputs, and its slope there, e^8 ~ 2981, times beta
#: (2.0) still fits float16 when the gradient is cast back to float16 inputs (max 65504).
EXPONENT_CAP = 8.0


def alpha_reward(mean_logps: torch.Tensor, alpha: float, cap: float = EXPONENT_CAP) -> torch.Tensor:
    r"""``(1 - p^{-alpha}) / alpha`` with ``p = exp(mean_logps)``; ``mean_logps`` itself at ``alpha = 0``.

    Written as ``-expm1(t) / alpha`` with ``t = -alpha * mean_logps`` (accurate for small ``alpha``). Past
    ``t = cap`` the exponential continues as its tangent there, ``e^cap (1 + t - cap) - 1``: for ``alpha > 0``
    a completion with a geometric-mean token probability below ``e^{-cap/alpha}`` (``e^{-32}`` at the defaults)
    gets a large but finite reward that still orders completions and still has a gradient (``e^cap``).

    Why not clamp: the cap used to depend on the input dtype (50 for float32 and bfloat16, 8 for float16),
    so the same log-probs gave a loss of 2e22 in bfloat16 and 1.3 in float16 -- and a clamp flattens every
    pair past it to one reward: float16's 1.3 was a zero margin with zero gradient, not a value.
    """
    if alpha == 0.0:
        return mean_logps
    exponent = -alpha * mean_logps
    below = torch.expm1(torch.clamp(exponent, max=cap))
    beyond = math.exp(cap) * torch.clamp(exponent - cap, min=0.0)
    return -(below + beyond) / alpha


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
    Past :math:`-\alpha\bar A = 8` the exponential continues linearly (:func:`alpha_reward`), the same for
    every input dtype, so very unlikely completions keep a finite, ordered reward and a bounded gradient.
    Pairs with an empty completion are not counted.

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
        # the same reward whatever the input dtype (computed in float32: PairLogps upcasts)
        return alpha_reward(logps.chosen_mean, self.alpha), alpha_reward(logps.rejected_mean, self.alpha)
