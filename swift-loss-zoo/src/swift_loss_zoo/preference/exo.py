"""EXO (pairwise): reverse KL between the policy's and the label-smoothed preference distribution."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import FDivergencePairLoss, LogRatios
from swift_zoo.losses import require_in_range


class ExoPairLoss(FDivergencePairLoss):
    r"""Efficient exact optimization (EXO) for pairwise preferences.

    With :math:`z = \beta\Delta` (:math:`\Delta` the DPO margin of summed log-ratios), the policy's
    distribution over {chosen, rejected} is :math:`(\sigma(z), \sigma(-z))` and the target is
    :math:`(1-\varepsilon, \varepsilon)`; the loss is their KL divergence

    .. math::
        \ell = \sigma(z)\,\big(\log\sigma(z) - \log(1-\varepsilon)\big)
             + \sigma(-z)\,\big(\log\sigma(-z) - \log\varepsilon\big)

    averaged over pairs. Its minimum, 0, is at :math:`z = \log((1-\varepsilon)/\varepsilon)`;
    :math:`\varepsilon` must be > 0 (else the target is degenerate and the loss unbounded).

    Paper: Ji et al., "Towards Efficient Exact Optimization of Language Model Alignment",
    arXiv:2402.00856 (Eq. 16, K = 2). TRL ``loss_type="exo_pair"``.

    Options: ``f_divergence_type`` / ``f_alpha_divergence_coef`` / ``f_alpha_divergence_convention``,
    ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``, ``label_smoothing=1e-3`` (in ``(0, 1)``; TRL <= 0.28 silently replaces
    0 by 1e-3, TRL 1.x raises, so does this loss).

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: exo_pair
          loss_kwargs: {beta: 0.1, label_smoothing: 1.0e-3}
    """

    name = "exo_pair"
    aliases = ("exo",)
    reference = "arXiv:2402.00856"
    equivalents = dpo_family("exo_pair", {"label_smoothing": 1e-3}, trl_kwargs={"label_smoothing": 1e-3},
                             swift_flags={"label_smoothing": 1e-3}, liger_kwargs={"label_smoothing": 1e-3})

    def __init__(
        self,
        *,
        beta: float = 0.1,
        label_smoothing: float = 1e-3,
        ld_alpha: float | None = None,
        use_weighting: bool = False,
        f_divergence_type: str = "reverse_kl",
        f_alpha_divergence_coef: float = 0.5,
        f_alpha_divergence_convention: str = "trl",
    ) -> None:
        super().__init__(beta=beta, ld_alpha=ld_alpha, use_weighting=use_weighting, f_divergence_type=f_divergence_type,
                         f_alpha_divergence_coef=f_alpha_divergence_coef,
                         f_alpha_divergence_convention=f_alpha_divergence_convention)
        self.label_smoothing = require_in_range(
            self.name, "label_smoothing", label_smoothing, 0.0, 1.0, low_inclusive=False, high_inclusive=False
        )

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        z = self.beta * ratios.score_margin
        eps = self.label_smoothing
        chosen = torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-eps))
        rejected = torch.sigmoid(-z) * (F.logsigmoid(-z) - math.log(eps))
        return chosen + rejected
