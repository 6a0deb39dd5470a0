"""SimPO: simple preference optimisation with a length-normalised reward and a target margin."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, flags, liger, ms_swift, trl
from swift_loss_zoo.preference._paired import smoothed_logistic
from swift_loss_zoo.reference_free._pairwise import PairLogps, ReferenceFreePairLoss, pair_logps
from swift_zoo import UnitLosses
from swift_zoo.losses import require_finite, require_in_range, require_non_negative, require_positive


class SimPOLoss(ReferenceFreePairLoss):
    r"""SimPO (Meng, Xia & Chen 2024, arXiv:2405.14734): reference-free, length-normalised.

    With the average log-probabilities :math:`\bar A_c = S_c/|y_c|`, :math:`\bar A_r = S_r/|y_r|`
    (summed log-probs over token counts), the margin :math:`\gamma = \texttt{gamma\_beta\_ratio}\cdot\beta`
    and :math:`z = \beta(\bar A_c - \bar A_r) - \gamma`, the per-pair loss is

    .. math::
        \ell = -(1-\varepsilon)\log\sigma(z) - \varepsilon\log\sigma(-z)
               + w_{\text{sft}}\,(-\bar A_c)

    (:math:`\varepsilon` = ``label_smoothing``; :math:`\varepsilon = 0` is the paper's eq. 6), averaged
    over pairs. The optional SFT term is the chosen completion's per-token NLL (the SimPO repository's
    ``sft_weight``; TRL's ``cpo_alpha`` with ``loss_type="simpo"``, which TRL takes as a token mean over
    the batch rather than per pair). Pairs with an empty completion are not counted.

    Defaults follow the SimPO recipe: ``beta=2.0``, ``gamma_beta_ratio=0.5`` (so :math:`\gamma = 1.0`),
    ``label_smoothing=0.0``, ``sft_weight=0.0``. TRL's ``simpo_gamma`` is :math:`\gamma` itself
    (``gamma_beta_ratio = simpo_gamma / beta``).

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (summed, differentiable),
    ``chosen_lengths``, ``rejected_lengths`` ``[B]`` (int token counts). Metrics: ``chosen_reward``,
    ``rejected_reward`` (:math:`\beta\bar A`), ``reward_margin``, ``reward_accuracy``.

    .. code-block:: yaml

        training_args:
          loss_type: simpo
          loss_kwargs: {beta: 2.0, gamma_beta_ratio: 0.5}
    """

    name = "simpo"
    reference = "arXiv:2405.14734"
    equivalents = (
        trl(call("CPOConfig", loss_type="simpo", beta=2.0, simpo_gamma=1.0, cpo_alpha=0.0)),
        trl(call("CPOConfig", loss_type="simpo", beta=2.0, simpo_gamma=1.0, cpo_alpha=1.0), {"sft_weight": 1.0},
            differs="TRL's NLL (cpo_alpha) is one token mean over the batch's chosen completion tokens, sft_weight's "
                    "a per-pair token mean (equal when the chosen lengths are equal)"),
        ms_swift(flags(rlhf_type="simpo", cpo_alpha=0), settings="TRL 0.29's CPOTrainer; beta 2.0, simpo_gamma 1.0"),
        ms_swift(flags(rlhf_type="simpo"), {"sft_weight": 1.0},
                 differs="ms-swift's default cpo_alpha=1 adds one token mean NLL over the batch's chosen tokens, "
                         "sft_weight a per-pair token mean (equal when the chosen lengths are equal)"),
        liger(call("LigerFusedLinearSimPOLoss", beta=2.0, gamma=1.0, alpha=0.0)),
    )

    def __init__(
        self,
        *,
        beta: float = 2.0,
        gamma_beta_ratio: float = 0.5,
        label_smoothing: float = 0.0,
        sft_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.beta = require_positive(self.name, "beta", beta)
        self.sft_weight = require_non_negative(self.name, "sft_weight", sft_weight)
        self.label_smoothing = require_in_range(
            self.name, "label_smoothing", label_smoothing, 0.0, 0.5, high_inclusive=False)
        self.gamma_beta_ratio = require_finite(self.name, "gamma_beta_ratio", gamma_beta_ratio)

    def rewards(self, logps: PairLogps, input_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``[B]`` chosen and rejected rewards (before ``beta``): SimPO's average log-probs."""
        return logps.chosen_mean, logps.rejected_mean

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logps = pair_logps(inputs)
        chosen, rejected = self.rewards(logps, inputs["policy_chosen_logps"].dtype)
        z = self.beta * (chosen - rejected) - self.gamma_beta_ratio * self.beta
        losses = smoothed_logistic(z, self.label_smoothing)
        if self.sft_weight:
            losses = losses - self.sft_weight * logps.chosen_mean
        self.record_pair_metrics(self.beta * chosen, self.beta * rejected, logps.counted, nll_chosen=-logps.chosen_mean)
        return UnitLosses(losses, logps.counted)
