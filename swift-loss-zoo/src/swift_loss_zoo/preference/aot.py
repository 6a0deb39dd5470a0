"""AOT: distributional alignment via optimal transport, by sorting across the batch."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._inputs import paired_inputs, with_options
from swift_loss_zoo.preference._paired import LogRatios, PairedReferenceLoss, smoothed_logistic
from swift_zoo.losses import require_in_range


class _RankMatchedLoss(PairedReferenceLoss):
    """What both AOT losses share: the smoothed logistic loss on differences of sorted quantities."""

    batch_dependent = (
        "sorts log-ratios across the pairs of the batch and matches them by rank (quantiles), so a "
        "micro-batch matches its pairs only within itself; the loss of a split batch differs by design"
    )

    # WPO weights are per pair; sorting matches pairs by rank, so a pair's weight has no rank to go to
    inputs = with_options(paired_inputs(reference=True), wpo=False)

    def __init__(self, *, beta: float = 0.1, label_smoothing: float = 0.0, ld_alpha: float | None = None) -> None:
        super().__init__(beta=beta, ld_alpha=ld_alpha)
        self.label_smoothing = require_in_range(self.name, "label_smoothing", label_smoothing, 0.0, 0.5)

    def rank_differences(self, ratios: LogRatios) -> torch.Tensor:
        """The ``[B]`` differences ``d_k`` of the two sorted vectors."""
        message = f"{type(self).__name__} must implement rank_differences(ratios) -> Tensor [B]"
        raise NotImplementedError(message)

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        return smoothed_logistic(self.beta * self.rank_differences(ratios), self.label_smoothing)


class AotLoss(_RankMatchedLoss):
    r"""Alignment via Optimal Transport (paired): first-order stochastic dominance of the margins.

    Sort the policy log-likelihood margins :math:`m_i = \log\pi(y_w^i) - \log\pi(y_l^i)` and the
    reference margins :math:`m^{ref}_i` **each** in ascending order over the batch, and compare them
    rank by rank:

    .. math::
        d_k = m_{(k)} - m^{ref}_{(k)}, \qquad
        \ell_k = -(1-\varepsilon)\log\sigma(\beta d_k) - \varepsilon\log\sigma(-\beta d_k)

    averaged over the B ranks (one unit per pair). Sorting is the 1-D optimal transport between
    the two empirical distributions.

    Batch semantics: a permutation of the pairs does not change the sorted vectors, so the loss
    is permutation-invariant; but it is **batch-dependent** (``batch_dependent`` says why):
    split into micro-batches it matches quantiles within each micro-batch only.

    Paper: Melnyk et al., "Distributional Preference Alignment of LLMs via Optimal Transport",
    arXiv:2406.05882. TRL ``loss_type="aot"``.

    Options: ``ld_alpha``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``, ``label_smoothing=0.0`` (in ``[0, 0.5]``).

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: aot
          loss_kwargs: {beta: 0.1}
    """

    name = "aot"
    reference = "arXiv:2406.05882"
    equivalents = dpo_family("aot", swift_flags={})

    def rank_differences(self, ratios: LogRatios) -> torch.Tensor:
        policy_margins = ratios.policy_chosen - ratios.policy_rejected
        reference_margins = ratios.reference_chosen - ratios.reference_rejected
        return torch.sort(policy_margins, dim=0).values - torch.sort(reference_margins, dim=0).values


class AotUnpairedLoss(_RankMatchedLoss):
    r"""Alignment via Optimal Transport (unpaired): the chosen log-ratios dominate the rejected ones.

    Sort the chosen log-ratios :math:`c_l^i` and the rejected log-ratios :math:`r_l^i` (policy minus
    reference, summed) **each** ascending over the batch and compare rank by rank:

    .. math::
        d_k = c_{l,(k)} - r_{l,(k)}, \qquad
        \ell_k = -(1-\varepsilon)\log\sigma(\beta d_k) - \varepsilon\log\sigma(-\beta d_k)

    averaged over the B ranks. The pairing of chosen with rejected is not used, so it suits
    unpaired data given as two equally sized halves.

    Batch semantics as :class:`AotLoss`: permutation-invariant, ``batch_dependent``.

    Paper: Melnyk et al., arXiv:2406.05882. TRL 1.x ``loss_type="aot_unpaired"`` (TRL <= 0.28
    called it ``aot_pair``).

    Options: ``ld_alpha``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``, ``label_smoothing=0.0`` (in ``[0, 0.5]``).

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    .. code-block:: yaml

        training_args:
          loss_type: aot_unpaired
          loss_kwargs: {beta: 0.1}
    """

    name = "aot_unpaired"
    aliases = ("aot_pair",)
    reference = "arXiv:2406.05882"
    equivalents = dpo_family("aot_unpaired", swift_flags={})

    def rank_differences(self, ratios: LogRatios) -> torch.Tensor:
        return torch.sort(ratios.chosen, dim=0).values - torch.sort(ratios.rejected, dim=0).values
