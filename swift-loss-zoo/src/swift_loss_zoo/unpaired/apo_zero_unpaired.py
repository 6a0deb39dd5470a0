"""APO-zero, unpaired: anchored preference optimisation on unpaired desirable / undesirable completions."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl
from swift_loss_zoo.preference._inputs import unpaired_inputs
from swift_loss_zoo.unpaired._unpaired import WeightedUnpairedLoss
from swift_zoo import UnitLosses


class APOZeroUnpairedLoss(WeightedUnpairedLoss):
    r"""APO-zero, unpaired variant (D'Oosterlinck et al. 2024, arXiv:2408.06266; TRL ``KTOTrainer``
    ``loss_type="apo_zero_unpaired"``).

    With the log-ratio :math:`r = S - R` of each completion, the per-sample loss is

    .. math::
        \ell = \begin{cases} w_d\,\big(1 - \sigma(\beta r)\big) & \text{desirable} \\
                             w_u\,\sigma(\beta r) & \text{undesirable}\end{cases}

    averaged over samples: desirable completions are pushed up and undesirable ones down, each
    anchored at the reference (no KL reference point, so no mismatched completions are needed and the
    loss splits exactly across micro-batches). Use it when the desirable completions are better than
    what the model produces by default.

    Defaults (TRL ``KTOConfig``): ``beta=0.1``, ``desirable_weight=1.0``, ``undesirable_weight=1.0``.

    Inputs: ``policy_logps`` ``[B]`` (summed, differentiable), ``reference_logps`` ``[B]``,
    ``is_desirable`` ``[B]`` (bool). Metrics: ``chosen_reward``, ``rejected_reward`` (mean :math:`\beta r`
    per class), ``count_chosen``, ``count_rejected``.

    .. code-block:: yaml

        training_args:
          loss_type: apo_zero_unpaired
          loss_kwargs: {beta: 0.1}
    """

    name = "apo_zero_unpaired"
    reference = "arXiv:2408.06266"
    equivalents = (
        trl(call("KTOConfig", loss_type="apo_zero_unpaired")),
        ms_swift(flags(rlhf_type="kto", loss_type="apo_zero_unpaired"), settings="TRL 0.29's KTOTrainer"),
    )
    inputs = unpaired_inputs(reference=True)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logratio = self.log_ratios(inputs)
        desirable = inputs["is_desirable"]
        # desirable: 1 - sigmoid(beta r) = sigmoid(-beta r); undesirable: sigmoid(beta r)
        signed = torch.where(desirable, -logratio, logratio)
        losses = self.class_weights(desirable, logratio) * torch.sigmoid(self.beta * signed)
        self.record_unpaired_metrics(self.beta * logratio, desirable)
        return UnitLosses(losses)
