"""SPPO with hard (0/1) win probabilities."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import LogRatios, PairedReferenceLoss


class SppoHardLoss(PairedReferenceLoss):
    r"""Self-Play Preference Optimization, hard-label version: regress each log-ratio to ±1/(2β).

    .. math::
        \ell = \Big(c_l - \frac{1}{2\beta}\Big)^2 + \Big(r_l + \frac{1}{2\beta}\Big)^2

    with :math:`c_l, r_l` the summed chosen / rejected log-ratios; averaged over pairs. This is the
    paper's Eq. (4.7) with the win probability set to 1 for the chosen and 0 for the rejected
    completion and :math:`\eta = 1/\beta` (the soft version needs per-pair win probabilities,
    e.g. from PairRM).

    Paper: Wu et al., "Self-Play Preference Optimization for Language Model Alignment",
    arXiv:2405.00675. TRL ``loss_type="sppo_hard"``.

    Options: ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: sppo_hard
          loss_kwargs: {beta: 0.1}
    """

    name = "sppo_hard"
    reference = "arXiv:2405.00675"
    equivalents = dpo_family("sppo_hard", swift_flags={}, liger_kwargs={})

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        half = 0.5 / self.beta
        return (ratios.chosen - half).square() + (ratios.rejected + half).square()
