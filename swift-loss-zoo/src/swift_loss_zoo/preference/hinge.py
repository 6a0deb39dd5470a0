"""SLiC-style hinge loss on the implicit reward margin."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import FDivergencePairLoss, LogRatios


class HingeLoss(FDivergencePairLoss):
    r"""Hinge (SLiC) loss on the DPO margin.

    .. math::
        \ell = \max(0,\ 1 - \beta\Delta)

    with :math:`\Delta` the DPO margin (summed log-ratios, chosen minus rejected); averaged over
    pairs. :math:`1/\beta` is the margin SLiC calls :math:`\delta`.

    Paper: Zhao et al., SLiC-HF, arXiv:2305.10425. TRL ``loss_type="hinge"``.

    Options: ``f_divergence_type`` / ``f_alpha_divergence_coef`` / ``f_alpha_divergence_convention``,
    ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: hinge
          loss_kwargs: {beta: 0.1}
    """

    name = "hinge"
    aliases = ("slic",)
    reference = "arXiv:2305.10425"
    equivalents = dpo_family("hinge", swift_flags={}, liger_kwargs={})

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        return torch.relu(1.0 - self.beta * ratios.score_margin)
