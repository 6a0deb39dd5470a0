"""Dr. GRPO: GRPO without the per-completion length normalisation (a constant instead)."""

from __future__ import annotations

from typing import Any, ClassVar

from swift_loss_zoo.policy._clipped import ClippedPolicyLoss
from swift_loss_zoo.policy._equivalents import liger_grpo, ms_swift_grpo, trl_grpo, verl_policy
from swift_zoo.losses import require_int


class DrGRPOLoss(ClippedPolicyLoss):
    r"""GRPO Done Right: the clipped surrogate summed over tokens and divided by a constant.

    .. math::
        L_{i,t} = -\min\big(\rho_{i,t} A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\mathrm{low},
                  1+\varepsilon_\mathrm{high}) A_i\big) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{N}\sum_i \frac{1}{L_\mathrm{max}}\sum_t L_{i,t}

    Unit: a **sequence** (a completion with at least one counted token), value
    :math:`\sum_t L_{i,t} / L_\mathrm{max}` with :math:`L_\mathrm{max}` = ``max_completion_length``,
    the generation budget, so a token's weight does not depend on its completion's length: verl
    ``loss_agg_mode="seq-mean-token-sum-norm"`` with ``loss_scale_factor=max_completion_length``, and
    TRL's ``sum / (B * max_completion_length)``. Pair it with advantages that are not divided by the
    group std (the ``dr_grpo`` advantage estimator), the other half of the paper's fix.

    Paper: Liu et al., "Understanding R1-Zero-Like Training", arXiv:2503.20783. Defaults:
    ``epsilon_low=0.2``, ``epsilon_high=0.2``, ``beta=0.0``; ``max_completion_length`` is required
    (TRL defaults it to its generation length 512): it must be the generation budget the
    completions were sampled with. ``delta`` / ``dual_clip`` off. The aggregation is the loss's
    definition, so ``loss_agg_mode`` and ``loss_scale_factor`` are not options here. Inputs, metrics
    and the other shared options as :class:`~swift_loss_zoo.policy.GRPOLoss`.

    .. code-block:: yaml

        training_args:
          loss_type: dr_grpo
          loss_kwargs: {max_completion_length: 1024}
    """

    name = "dr_grpo"
    reference = "arXiv:2503.20783"
    equivalents = (
        trl_grpo("dr_grpo", zoo_kwargs={"max_completion_length": 512},
                 settings="max_completion_length=512 (TRL's default; the same value on both sides)", rows=True),
        verl_policy("vanilla", "seq-mean-token-sum-norm", zoo_kwargs={"max_completion_length": 512, "dual_clip": 3.0},
                    settings="loss_scale_factor = max_completion_length; clip_ratio_c = dual_clip"),
        ms_swift_grpo("dr_grpo", zoo_kwargs={"max_completion_length": 512, "beta": 0.04},
                      settings="max_completion_length=512 (its default)"),
        liger_grpo("dr_grpo", zoo_kwargs={"max_completion_length": 512}, settings="max_completion_length=512",
                   rows=True),
    )
    hidden_options: ClassVar[tuple[str, ...]] = ("loss_agg_mode", "loss_scale_factor")
    fixed_loss_agg_mode: ClassVar[str] = "seq-mean-token-sum-norm"

    def __init__(self, *, max_completion_length: int, **options: Any) -> None:
        max_completion_length = require_int(self.name, "max_completion_length", max_completion_length,
                                            low=1, high=2**31 - 1)
        super().__init__(loss_agg_mode=self.fixed_loss_agg_mode, loss_scale_factor=max_completion_length, **options)
        self.max_completion_length = max_completion_length

    @classmethod
    def example_kwargs(cls) -> dict:
        return {**super().example_kwargs(), "max_completion_length": 8}
