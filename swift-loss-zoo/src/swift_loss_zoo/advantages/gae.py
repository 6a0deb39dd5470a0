"""GAE advantages and returns from a critic's values (PPO)."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import TOKENS, verl_advantage
from swift_loss_zoo.advantages._inputs import COMPLETION_MASK, REWARDS, TOKEN_REWARDS, VALUES
from swift_loss_zoo.advantages._token_rewards import token_rewards
from swift_zoo.losses import require_bool, require_in_range
from swift_zoo.ops import masked_whiten


class GAEAdvantage(ZooAdvantage):
    r"""Generalized Advantage Estimation over each response's counted tokens.

    Over the counted positions :math:`t_1 < \dots < t_n` of a response, with :math:`V_{t_{n+1}} = 0`:

    .. math::
        \delta_k = R_{t_k} + \gamma V_{t_{k+1}} - V_{t_k},\qquad
        \hat A_{t_k} = \delta_k + \gamma\lambda \hat A_{t_{k+1}},\qquad G_{t_k} = \hat A_{t_k} + V_{t_k}

    with :math:`R` the per-token rewards (``token_rewards`` plus the score on the last counted token).
    Masked positions are skipped, not steps (TRL's recursion for right padding; a masked span inside
    a response, tool output, is bridged, as verl). With ``whiten`` the advantages are whitened over the
    batch's counted tokens (Bessel-corrected; verl always whitens); the returns :math:`G` use the raw
    advantages and are recorded as ``outputs["returns"]`` for the value loss. Level: **token**.

    Paper: Schulman et al., arXiv:1506.02438. Defaults: ``gamma=1.0``, ``lam=0.95`` (TRL ``PPOConfig``;
    verl's ``algorithm.lam`` defaults to 1.0), ``whiten=True``. Inputs: ``rewards [B]``,
    ``token_rewards [B, T]`` (optional), ``values [B, T]``, ``completion_mask [B, T]``.

    .. code-block:: yaml

        training_args:
          advantage_type: gae
          advantage_kwargs: {gamma: 1.0, lam: 0.95}
    """

    name = "gae"
    reference = "arXiv:1506.02438"
    equivalents = (
        verl_advantage("compute_gae_advantage_return", "gae", settings=f"algorithm.gamma / algorithm.lam = gamma / lam "
                       f"(verl's lam defaults to 1.0), whiten=True (verl always whitens); returns compared too; {TOKENS}"),
    )
    level: ClassVar[str] = "token"
    inputs = (REWARDS, TOKEN_REWARDS, VALUES, COMPLETION_MASK)
    extra_outputs: ClassVar[tuple[str, ...]] = ("returns",)

    def __init__(self, *, gamma: float = 1.0, lam: float = 0.95, whiten: bool = True) -> None:
        super().__init__()
        self.gamma = require_in_range(self.display_name, "gamma", gamma, 0.0, 1.0)
        self.lam = require_in_range(self.display_name, "lam", lam, 0.0, 1.0)
        self.whiten = require_bool(self.display_name, "whiten", whiten)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards, keep = token_rewards(inputs)
        zero = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
        values = torch.where(keep, inputs["values"].to(rewards.dtype), zero)
        advantages = torch.zeros_like(values)
        next_value = torch.zeros_like(values[:, 0])
        running = torch.zeros_like(values[:, 0])
        for t in range(values.shape[1] - 1, -1, -1):
            step = rewards[:, t] + self.gamma * next_value - values[:, t] + self.gamma * self.lam * running
            running = torch.where(keep[:, t], step, running)
            next_value = torch.where(keep[:, t], values[:, t], next_value)
            advantages[:, t] = torch.where(keep[:, t], step, zero)
        returns = advantages + values
        self.record_outputs(returns=returns)
        self.record_metrics(return_mean=returns.sum() / keep.sum().clamp(min=1))
        return masked_whiten(advantages, keep) if self.whiten else advantages
