"""DAPO: token-level normalisation and decoupled ("clip-higher") clipping ranges."""

from __future__ import annotations

from typing import Any

from swift_loss_zoo.policy._clipped import ClippedPolicyLoss
from swift_loss_zoo.policy._equivalents import liger_grpo, ms_swift_grpo, trl_grpo, verl_policy


class DAPOLoss(ClippedPolicyLoss):
    r"""Decoupled Clip and Dynamic sAmpling Policy Optimization: the loss term.

    .. math::
        L_{i,t} = -\min\big(\rho_{i,t} A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\mathrm{low},
                  1+\varepsilon_\mathrm{high}) A_i\big) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{\sum_i |o_i|}\sum_{i,t} L_{i,t}

    Unit: a **token** (verl ``token-mean``); pass ``num_items_in_batch`` = completion tokens of the
    whole generation batch (all micro-batches and ranks), as TRL does, so every token weighs the
    same however the batch is split. Clip-higher: ``epsilon_high > epsilon_low`` lets
    low-probability tokens with positive advantage grow further (against entropy collapse). Dynamic
    sampling and overlong reward shaping are data-side and not part of this loss.

    Paper: Yu et al., DAPO, arXiv:2503.14476 (eq. 8): ``epsilon_low=0.2``, ``epsilon_high=0.28``,
    no KL term (``beta=0.0``). TRL's default ``loss_type``. ``delta`` / ``dual_clip`` off. Inputs,
    metrics and the shared options as :class:`~swift_loss_zoo.policy.GRPOLoss`.

    .. code-block:: yaml

        training_args:
          loss_type: dapo
          loss_kwargs: {epsilon_low: 0.2, epsilon_high: 0.28}
    """

    name = "dapo"
    reference = "arXiv:2503.14476"
    equivalents = (
        trl_grpo("dapo", settings="epsilon_high=0.28; num_items_in_batch = the completion tokens TRL counts"),
        verl_policy("vanilla", "token-mean", zoo_kwargs={"dual_clip": 3.0},
                    settings="clip_ratio_high=0.28; clip_ratio_c = dual_clip (verl always dual-clips)"),
        ms_swift_grpo("dapo", zoo_kwargs={"beta": 0.04}, settings="epsilon_high=0.28"),
        liger_grpo("dapo", settings="epsilon_high=0.28; num_items_in_batch as TRL"),
    )

    def __init__(self, *, epsilon_high: float = 0.28, **options: Any) -> None:
        super().__init__(epsilon_high=epsilon_high, **options)
