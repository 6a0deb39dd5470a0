"""CPO: contrastive preference optimisation (reference-free DPO plus behaviour cloning)."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, flags, liger, ms_swift, trl
from swift_loss_zoo.preference._paired import smoothed_logistic
from swift_loss_zoo.reference_free._pairwise import ReferenceFreePairLoss, pair_logps
from swift_zoo import ConfigError, UnitLosses
from swift_zoo.losses import require_in_range, require_non_negative, require_positive

CPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo")


class CPOLoss(ReferenceFreePairLoss):
    r"""CPO (Xu et al. 2024, arXiv:2401.08417): a reference-free preference term plus an NLL on chosen.

    With summed log-probabilities :math:`S_c, S_r`, token counts :math:`n_c, n_r` and
    :math:`x = S_c - S_r`, the preference term is, by ``loss_type``:

    * ``sigmoid`` (the paper's eq. 3 at :math:`\varepsilon=0`):
      :math:`-(1-\varepsilon)\log\sigma(\beta x) - \varepsilon\log\sigma(-\beta x)`;
    * ``hinge``: :math:`\max(0, 1 - \beta x)`;
    * ``ipo``: :math:`(\bar x - \tfrac{1}{2\beta})^2` with length-averaged :math:`\bar x = S_c/n_c - S_r/n_r`
      (as TRL's CPO trainer).

    The per-pair loss adds the behaviour-cloning term :math:`\alpha\,(-S_c/n_c)` (``cpo_alpha``), the
    chosen completion's per-token NLL, and the loss is the mean over pairs. TRL's ``CPOTrainer`` takes the
    NLL as one token mean over all chosen tokens of the batch; the two agree when the chosen lengths are
    equal (a per-pair NLL is what keeps micro-batch splitting exact). Pairs with an empty completion are
    not counted.

    Defaults (TRL ``CPOConfig``): ``beta=0.1``, ``label_smoothing=0.0``, ``cpo_alpha=1.0``,
    ``loss_type="sigmoid"``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (summed, differentiable),
    ``chosen_lengths``, ``rejected_lengths`` ``[B]`` (int). Metrics: ``chosen_reward``, ``rejected_reward``
    (:math:`\beta S`), ``reward_margin``, ``reward_accuracy``, ``nll_chosen``.

    .. code-block:: yaml

        training_args:
          loss_type: cpo
          loss_kwargs: {beta: 0.1, cpo_alpha: 1.0}
    """

    name = "cpo"
    reference = "arXiv:2401.08417"
    equivalents = (
        trl(call("CPOConfig", loss_type="sigmoid", cpo_alpha=0.0), {"cpo_alpha": 0.0}),
        trl(call("CPOConfig", loss_type="hinge", cpo_alpha=0.0), {"cpo_alpha": 0.0, "loss_type": "hinge"}),
        trl(call("CPOConfig", loss_type="ipo", cpo_alpha=0.0), {"cpo_alpha": 0.0, "loss_type": "ipo"}),
        trl(call("CPOConfig", loss_type="sigmoid", label_smoothing=0.1, cpo_alpha=0.0),
            {"cpo_alpha": 0.0, "label_smoothing": 0.1}),
        trl(call("CPOConfig", loss_type="sigmoid"),
            differs="TRL's NLL (cpo_alpha) is one token mean over the batch's chosen completion tokens, the zoo's a "
                    "per-pair token mean (equal when the chosen lengths are equal)"),
        ms_swift(flags(rlhf_type="cpo", cpo_alpha=0), {"cpo_alpha": 0.0}, settings="TRL 0.29's CPOTrainer"),
        liger(call("LigerFusedLinearCPOLoss", alpha=0.0), {"cpo_alpha": 0.0}),
        liger(call("LigerFusedLinearCPOLoss", alpha=0.0, label_smoothing=0.1), {"cpo_alpha": 0.0, "label_smoothing": 0.1}),
    )

    def __init__(
        self,
        *,
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        cpo_alpha: float = 1.0,
        loss_type: str = "sigmoid",
    ) -> None:
        super().__init__()
        beta = require_positive(self.name, "beta", beta)
        label_smoothing = require_in_range(
            self.name, "label_smoothing", label_smoothing, 0.0, 0.5, high_inclusive=False)
        cpo_alpha = require_non_negative(self.name, "cpo_alpha", cpo_alpha)
        if loss_type not in CPO_LOSS_TYPES:
            message = f"{self.name}: loss_type must be one of {', '.join(CPO_LOSS_TYPES)}, got {loss_type!r}"
            raise ConfigError(message, key="loss_type", expected=" | ".join(CPO_LOSS_TYPES), found=loss_type)
        if label_smoothing and loss_type != "sigmoid":
            message = (
                f"{self.name}: label_smoothing must be 0.0 unless loss_type is 'sigmoid', got "
                f"label_smoothing={label_smoothing!r} with loss_type {loss_type!r}"
            )
            raise ConfigError(message, key="label_smoothing", expected=f"0.0 with loss_type {loss_type}",
                              found=label_smoothing)
        self.beta = beta
        self.label_smoothing = label_smoothing
        self.cpo_alpha = cpo_alpha
        self.loss_type = loss_type

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logps = pair_logps(inputs)
        if self.loss_type == "sigmoid":
            losses = smoothed_logistic(self.beta * (logps.chosen - logps.rejected), self.label_smoothing)
        elif self.loss_type == "hinge":
            losses = torch.relu(1.0 - self.beta * (logps.chosen - logps.rejected))
        else:
            losses = (logps.chosen_mean - logps.rejected_mean - 1.0 / (2.0 * self.beta)) ** 2
        if self.cpo_alpha:
            losses = losses - self.cpo_alpha * logps.chosen_mean
        self.record_pair_metrics(self.beta * logps.chosen, self.beta * logps.rejected, logps.counted,
                                 nll_chosen=-logps.chosen_mean)
        return UnitLosses(losses, logps.counted)
