"""RPO: DPO plus a length-normalised NLL term on the chosen completion."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl
from swift_loss_zoo.preference._inputs import paired_inputs, with_options
from swift_loss_zoo.preference._paired import LogRatios, PairedReferenceLoss
from swift_zoo.losses import require_non_negative


class RpoLoss(PairedReferenceLoss):
    r"""Iterative Reasoning Preference Optimization's loss: DPO + alpha * NLL of the chosen completion.

    .. math::
        \ell = -\log\sigma(\beta\Delta) + \alpha\,\Big(-\frac{\log\pi(y_w)}{n_w}\Big)

    with :math:`\Delta` the DPO margin (summed log-ratios), :math:`\log\pi(y_w)` the policy's summed
    log-prob of the chosen completion and :math:`n_w` its token count (clamped to >= 1); averaged
    over pairs. The NLL is a per-sequence token mean, as in the paper; TRL <= 0.28's
    ``rpo_alpha`` used a token mean over the whole batch instead (equal when lengths are equal).
    The paper divides by the length of prompt plus completion, of which only the completion is
    scored here; ``chosen_lengths`` is read only by the NLL term, so pass that total there to
    follow the paper to the letter.

    Paper: Pang et al., arXiv:2404.19733. TRL <= 0.28 / ms-swift ``rpo_alpha``.

    Options: ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``, ``alpha=1.0`` (>= 0).

    Inputs: the four summed log-probs ``[B]`` plus ``chosen_lengths`` ``[B]`` (int).

    Metrics: the DPO rewards metrics and ``nll`` (mean per-token NLL of chosen).

    .. code-block:: yaml

        training_args:
          loss_type: rpo
          loss_kwargs: {beta: 0.1, alpha: 1.0}
    """

    name = "rpo"
    reference = "arXiv:2404.19733"
    equivalents = (
        trl(call("DPOConfig", loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0]), {"alpha": 1.0},
            differs="TRL takes the NLL as one token mean over the batch's chosen tokens, rpo per pair (equal when "
                    "the chosen lengths are equal); weighted_sum of dpo and sft is TRL's form exactly"),
        ms_swift(flags(rlhf_type="dpo", loss_type="sigmoid", rpo_alpha=1.0), {"alpha": 1.0},
                 differs="ms-swift adds rpo_alpha times one token mean over the batch's chosen tokens, rpo a per-pair "
                         "token mean (equal when the chosen lengths are equal); weighted_sum of dpo and sft is "
                         "ms-swift's form exactly"),
    )
    inputs = with_options(paired_inputs(reference=True, lengths=True, rejected_lengths=False))

    def __init__(
        self,
        *,
        beta: float = 0.1,
        alpha: float = 1.0,
        ld_alpha: float | None = None,
        use_weighting: bool = False,
    ) -> None:
        super().__init__(beta=beta, ld_alpha=ld_alpha, use_weighting=use_weighting)
        self.alpha = require_non_negative(self.name, "alpha", alpha)

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        nll = -ratios.policy_chosen / ratios.chosen_lengths
        self.record_metrics(nll=nll.mean())
        return -F.logsigmoid(self.beta * ratios.margin) + self.alpha * nll
