"""Provably robust DPO (rDPO): an unbiased loss under label noise of known rate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import FDivergencePairLoss, LogRatios
from swift_zoo.losses import require_in_range


class RobustDpoLoss(FDivergencePairLoss):
    r"""Robust DPO: de-biases the DPO loss for preference labels flipped with probability ε.

    With :math:`\Delta` the DPO margin (summed log-ratios, chosen minus rejected) and
    :math:`\varepsilon` = ``label_smoothing`` the flip rate,

    .. math::
        \ell = \frac{-(1-\varepsilon)\log\sigma(\beta\Delta) + \varepsilon\log\sigma(-\beta\Delta)}{1 - 2\varepsilon}

    averaged over pairs. Unlike cDPO (:class:`~swift_loss_zoo.preference.dpo.DpoLoss` with
    smoothing) the flipped term enters with a **plus** sign, so the loss is unbounded below (it
    decreases linearly as :math:`\beta\Delta \to \infty` when :math:`\varepsilon > 0`); it stays
    finite for finite inputs. :math:`\varepsilon = 0` is DPO.

    Paper: Chowdhury et al., "Provably Robust DPO", arXiv:2403.00409. TRL ``loss_type="robust"``.

    Options: ``f_divergence_type`` / ``f_alpha_divergence_coef`` / ``f_alpha_divergence_convention``,
    ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``, ``label_smoothing=0.0`` (in ``[0, 0.5)``; the paper uses e.g. 0.1).

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: robust_dpo
          loss_kwargs: {beta: 0.1, label_smoothing: 0.1}
    """

    name = "robust_dpo"
    aliases = ("rdpo",)
    reference = "arXiv:2403.00409"
    equivalents = dpo_family("robust", {"label_smoothing": 0.1}, trl_kwargs={"label_smoothing": 0.1},
                             swift_flags={"label_smoothing": 0.1}, liger_kwargs={"label_smoothing": 0.1})

    def __init__(
        self,
        *,
        beta: float = 0.1,
        label_smoothing: float = 0.0,
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
            self.name, "label_smoothing", label_smoothing, 0.0, 0.5, high_inclusive=False
        )

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        z = self.beta * ratios.score_margin
        eps = self.label_smoothing
        return (-(1.0 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1.0 - 2.0 * eps)
