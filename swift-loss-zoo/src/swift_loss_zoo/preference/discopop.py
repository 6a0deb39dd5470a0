"""DiscoPOP: the log-ratio modulated loss discovered by LLM-driven objective search."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import FDivergencePairLoss, LogRatios
from swift_zoo.losses import require_in_range


class DiscoPopLoss(FDivergencePairLoss):
    r"""DiscoPOP (log-ratio modulated loss, LRML): a logistic / exponential blend gated by the margin.

    With :math:`z = \beta\Delta` (:math:`\Delta` the DPO margin of summed log-ratios) and
    :math:`w = \sigma(z/\tau)`,

    .. math::
        \ell = (1 - w)\,\big(-\log\sigma(z)\big) + w\,e^{-z}

    averaged over pairs. Computed as :math:`\sigma(-z/\tau)\,\mathrm{softplus}(-z) +
    \exp(\log\sigma(z/\tau) - z)`, which is finite for every finite :math:`z` when
    :math:`\tau < 1` (the exponent tends to :math:`-\infty` on both sides); the direct form gives
    ``0 * inf = nan`` for large negative margins. ``tau`` must lie in ``(0, 1)``: for
    :math:`\tau \ge 1` the exponential term is unbounded (it overflows for large negative margins).

    Paper: Chris Lu et al., "Discovering Preference Optimization Algorithms with and for Large
    Language Models", arXiv:2406.08414 (Eq. 5). TRL ``loss_type="discopop"``
    (``discopop_tau``).

    Options: ``f_divergence_type`` / ``f_alpha_divergence_coef`` / ``f_alpha_divergence_convention``,
    ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``, ``tau=0.05``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: discopop
          loss_kwargs: {beta: 0.1, tau: 0.05}
    """

    name = "discopop"
    aliases = ("lrml",)
    reference = "arXiv:2406.08414"
    equivalents = dpo_family("discopop", swift_flags={}, liger_kwargs={})

    def __init__(
        self,
        *,
        beta: float = 0.1,
        tau: float = 0.05,
        ld_alpha: float | None = None,
        use_weighting: bool = False,
        f_divergence_type: str = "reverse_kl",
        f_alpha_divergence_coef: float = 0.5,
        f_alpha_divergence_convention: str = "trl",
    ) -> None:
        super().__init__(beta=beta, ld_alpha=ld_alpha, use_weighting=use_weighting, f_divergence_type=f_divergence_type,
                         f_alpha_divergence_coef=f_alpha_divergence_coef,
                         f_alpha_divergence_convention=f_alpha_divergence_convention)
        self.tau = require_in_range(self.name, "tau", tau, 0.0, 1.0, low_inclusive=False, high_inclusive=False)

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        z = self.beta * ratios.score_margin
        logistic = torch.sigmoid(-z / self.tau) * F.softplus(-z)
        exponential = torch.exp(F.logsigmoid(z / self.tau) - z)
        return logistic + exponential
