"""LUSPO: GSPO with each completion's loss scaled by its length."""

from __future__ import annotations

from typing import Any

from swift_loss_zoo.policy._aggregation import LossAggMode
from swift_loss_zoo.policy._equivalents import liger_grpo, trl_grpo
from swift_loss_zoo.policy.gspo import GSPOLoss


class LUSPOLoss(GSPOLoss):
    r"""Length-Unbiased Sequence Policy Optimization.

    GSPO's sequence-level clipped objective with every completion's term multiplied by its length
    :math:`|o_i|`, which removes GSPO's bias towards short completions:

    .. math::
        L_i = |o_i|\cdot\Big(-\min\big(s_i A_i,\ \mathrm{clip}(s_i, 1-\varepsilon_\mathrm{low},
              1+\varepsilon_\mathrm{high}) A_i\big)\Big) + \beta\sum_t \mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{N}\sum_i L_i

    with :math:`s_i` GSPO's length-normalised sequence ratio. That is GSPO's per-token losses
    aggregated with ``loss_agg_mode="seq-mean-token-sum"`` (sum over the completion's tokens, mean
    over completions; unit: a **sequence**), which is how it is computed here. TRL ``loss_type=
    "luspo"`` with ``importance_sampling_level="sequence"`` (TRL divides by the row count, all-padding
    rows included; here only completions with a counted token are units).

    Paper: arXiv:2602.05261 (built on GSPO): defaults are GSPO's, ``epsilon_low=3e-4``,
    ``epsilon_high=4e-4``; ``beta=0.0``; the shared options as :class:`~swift_loss_zoo.policy.GRPOLoss`.
    Inputs and metrics as :class:`~swift_loss_zoo.policy.GSPOLoss`.

    .. code-block:: yaml

        training_args:
          loss_type: luspo
          loss_kwargs: {epsilon_low: 3.0e-4, epsilon_high: 4.0e-4}
    """

    name = "luspo"
    reference = "arXiv:2602.05261"
    equivalents = (
        trl_grpo("luspo", sequence=True, settings="epsilon=3e-4, epsilon_high=4e-4", rows=True),
        liger_grpo("luspo", sequence=True, rows=True,
                   settings="beta=0.0 and no rollout_correction (once its luspo loss has a token dimension, Liger "
                   "sums it over padding too); epsilon_low=3e-4, epsilon_high=4e-4"),
    )

    def __init__(self, *, loss_agg_mode: LossAggMode = "seq-mean-token-sum", **options: Any) -> None:
        super().__init__(loss_agg_mode=loss_agg_mode, **options)
