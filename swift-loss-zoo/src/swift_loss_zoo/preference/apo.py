"""APO: anchored preference optimization (zero and down anchors)."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import LogRatios, PairedReferenceLoss


class ApoZeroLoss(PairedReferenceLoss):
    r"""Anchored Preference Optimization, APO-zero: raise the chosen, lower the rejected likelihood.

    .. math::
        \ell = \big(1 - \sigma(\beta c_l)\big) + \sigma(\beta r_l)

    with :math:`c_l, r_l` the summed chosen / rejected log-ratios (computed as
    :math:`\sigma(-\beta c_l) + \sigma(\beta r_l)`); averaged over pairs. Use when the chosen
    completions are better than the model's own outputs.

    Paper: D'Oosterlinck et al., "Anchored Preference Optimization and Contrastive Revisions",
    arXiv:2408.06266 (Eq. 7). TRL ``loss_type="apo_zero"``.

    Options: ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: apo_zero
          loss_kwargs: {beta: 0.1}
    """

    name = "apo_zero"
    reference = "arXiv:2408.06266"
    equivalents = dpo_family("apo_zero", swift_flags={}, liger_kwargs={})

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        return torch.sigmoid(-self.beta * ratios.chosen) + torch.sigmoid(self.beta * ratios.rejected)


class ApoDownLoss(PairedReferenceLoss):
    r"""Anchored Preference Optimization, APO-down: lower both likelihoods, the rejected one more.

    .. math::
        \ell = \sigma(\beta c_l) + \big(1 - \sigma(\beta (c_l - r_l))\big)

    (computed as :math:`\sigma(\beta c_l) + \sigma(-\beta\Delta)`); averaged over pairs. Use when
    the model's own outputs are better than the chosen completions.

    Paper: D'Oosterlinck et al., arXiv:2408.06266 (Eq. 8). TRL ``loss_type="apo_down"``.

    Options: ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: apo_down
          loss_kwargs: {beta: 0.1}
    """

    name = "apo_down"
    reference = "arXiv:2408.06266"
    equivalents = dpo_family("apo_down", swift_flags={}, liger_kwargs={})

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        return torch.sigmoid(self.beta * ratios.chosen) + torch.sigmoid(-self.beta * ratios.margin)
