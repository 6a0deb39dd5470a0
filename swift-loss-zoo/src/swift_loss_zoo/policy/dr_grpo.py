"""Dr. GRPO: GRPO without the per-completion length normalisation (a constant instead)."""

from __future__ import annotations

import torch

from swift_loss_zoo.policy._group_policy import GroupPolicyLoss
from swift_zoo import ConfigError


class DrGRPOLoss(GroupPolicyLoss):
    r"""GRPO Done Right: the clipped surrogate summed over tokens and divided by a constant.

    .. math::
        L_{i,t} = -\min\big(\rho_{i,t} A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\mathrm{low},
                  1+\varepsilon_\mathrm{high}) A_i\big) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{N}\sum_i \frac{1}{L_\mathrm{max}}\sum_t L_{i,t}

    Unit: a **sequence** (a completion with at least one counted token), value
    :math:`\sum_t L_{i,t} / L_\mathrm{max}` with :math:`L_\mathrm{max}` = ``max_completion_length``,
    the generation budget, so a token's weight does not depend on its completion's length. This is
    TRL's ``sum / (B * max_completion_length)``. Pair it with advantages that are not divided by the
    group std (:func:`swift_loss_zoo.policy.group_advantages` with ``scale="none"``), the other half
    of the paper's fix.

    Paper: Liu et al., "Understanding R1-Zero-Like Training", arXiv:2503.20783. Defaults:
    ``epsilon_low=0.2``, ``epsilon_high=0.2``, ``beta=0.0``; ``max_completion_length`` is required
    (TRL defaults it to its generation length 512): it must be the generation budget the
    completions were sampled with. Inputs and metrics as :class:`GRPOLoss`.

    ``delta`` (default ``None``): INTELLECT-2's two-sided clipping (arXiv:2505.07291, TRL ``delta``):
    the unclipped term uses :math:`\min(\rho, \delta)`, bounding the loss of tokens whose ratio is
    huge while their advantage is negative; must exceed ``1 + epsilon_high``.

    .. code-block:: yaml

        training_args:
          loss_type: dr_grpo
          loss_kwargs: {max_completion_length: 1024}
    """

    name = "dr_grpo"
    reference = "arXiv:2503.20783"
    reduction_unit = "sequence"

    def __init__(self, *, max_completion_length: int, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
                 beta: float = 0.0, delta: float | None = None, unbiased_kl: bool = False) -> None:
        if isinstance(max_completion_length, bool) or not isinstance(max_completion_length, int) \
                or max_completion_length < 1:
            message = f"dr_grpo: max_completion_length must be an int >= 1, got {max_completion_length!r}"
            raise ConfigError(message, key="max_completion_length", expected="an int >= 1",
                              found=max_completion_length)
        super().__init__(epsilon_low=epsilon_low, epsilon_high=epsilon_high, beta=beta, delta=delta,
                         unbiased_kl=unbiased_kl)
        self.max_completion_length = max_completion_length

    def sequence_denominator(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(float(self.max_completion_length), dtype=dtype, device=mask.device)

    @classmethod
    def example_kwargs(cls) -> dict:
        return {"max_completion_length": 8, "beta": 0.04}
