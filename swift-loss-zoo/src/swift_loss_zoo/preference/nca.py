"""NCA (pairwise): noise-contrastive alignment on absolute implicit rewards."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import LogRatios, PairedReferenceLoss


class NcaPairLoss(PairedReferenceLoss):
    r"""Noise Contrastive Alignment for pairwise preferences.

    With the implicit rewards :math:`r_w = \beta c_l`, :math:`r_l = \beta r_l'` (summed log-ratios
    of chosen / rejected),

    .. math::
        \ell = -\log\sigma(r_w) - \tfrac12\log\sigma(-r_w) - \tfrac12\log\sigma(-r_l)

    averaged over pairs. It optimises absolute likelihoods, not only the margin, so the chosen
    likelihood is not pushed down with the rejected one.

    Paper: Chen et al., "Noise Contrastive Alignment of Language Models with Explicit Rewards",
    arXiv:2402.05369. TRL ``loss_type="nca_pair"``.

    Options: ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: nca_pair
          loss_kwargs: {beta: 0.1}
    """

    name = "nca_pair"
    aliases = ("nca",)
    reference = "arXiv:2402.05369"
    equivalents = dpo_family("nca_pair", swift_flags={}, liger_kwargs={})

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        chosen = self.beta * ratios.chosen
        rejected = self.beta * ratios.rejected
        return -F.logsigmoid(chosen) - 0.5 * F.logsigmoid(-chosen) - 0.5 * F.logsigmoid(-rejected)
