"""BNPO: the GRPO clipped surrogate normalised by the number of completion tokens."""

from __future__ import annotations

from swift_loss_zoo.policy._clipped import ClippedPolicyLoss
from swift_loss_zoo.policy._equivalents import liger_grpo, ms_swift_grpo, trl_grpo, verl_policy


class BNPOLoss(ClippedPolicyLoss):
    r"""GRPO's clipped surrogate with token-level normalisation (TRL ``loss_type="bnpo"``).

    .. math::
        L_{i,t} = -\min\big(\rho_{i,t} A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\mathrm{low},
                  1+\varepsilon_\mathrm{high}) A_i\big) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{N}\sum_{i,t} L_{i,t}

    Unit: a **token** (verl ``loss_agg_mode="token-mean"``); :math:`N` = completion tokens. TRL's
    ``bnpo`` divides by the tokens of the local micro-batch (and then by the accumulation steps),
    which depends on how the batch is split; pass ``num_items_in_batch`` (completion tokens of the
    whole accumulated batch) to get the split-invariant version, which is then the same objective
    as ``dapo`` with symmetric clipping, and verl's ``vanilla`` policy loss (with ``dual_clip=3``).

    Reference: the GRPO objective of arXiv:2402.03300 with the token normalisation of TRL
    (``trl/trainer/grpo_trainer.py``, ``loss_type="bnpo"``). Defaults: ``epsilon_low=0.2``,
    ``epsilon_high=0.2``, ``beta=0.0``; ``delta`` / ``dual_clip`` off. Inputs, metrics and the
    shared options as :class:`~swift_loss_zoo.policy.GRPOLoss`.

    .. code-block:: yaml

        training_args:
          loss_type: bnpo
          loss_kwargs: {epsilon_low: 0.2, epsilon_high: 0.2}
    """

    name = "bnpo"
    reference = "arXiv:2402.03300"
    equivalents = (
        trl_grpo("bnpo", settings="TRL divides by the tokens of each micro-batch: equal for one micro-batch per step"),
        verl_policy("vanilla", "token-mean", zoo_kwargs={"dual_clip": 3.0}, settings="clip_ratio_c = dual_clip (verl's vanilla loss always dual-clips, clip_ratio_c=3.0 by default)"),
        ms_swift_grpo("bnpo", zoo_kwargs={"beta": 0.04}),
        liger_grpo("bnpo"),
    )
