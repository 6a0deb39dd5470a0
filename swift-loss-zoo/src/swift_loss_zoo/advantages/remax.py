"""ReMax advantages: the return minus the reward of a greedy baseline response."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import TOKENS, verl_advantage
from swift_loss_zoo.advantages._inputs import BASELINE_REWARDS, COMPLETION_MASK, REWARDS, TOKEN_REWARDS
from swift_loss_zoo.advantages._token_rewards import discounted_returns, token_rewards
from swift_zoo.ops import upcast


class ReMaxAdvantage(ZooAdvantage):
    r"""ReMax: REINFORCE with the greedy response's reward as baseline.

    .. math::
        G_{i,t} = \sum_{t' \ge t} R_{i,t'},\qquad A_{i,t} = G_{i,t} - b_i

    over counted tokens, with :math:`R` the per-token rewards (``token_rewards`` plus the score on the
    last counted token) and :math:`b_i` = ``baseline_rewards``: the reward of the greedy (argmax)
    response to the same prompt, which the trainer generates and scores. No critic, no group. Level:
    **token** (``[B, T]``, 0 on masked positions).

    Paper: Li et al., arXiv:2310.10505. No hyperparameters. Inputs: ``rewards [B]``,
    ``baseline_rewards [B]``, ``token_rewards [B, T]`` (optional), ``completion_mask [B, T]``.

    .. code-block:: yaml

        training_args:
          advantage_type: remax
    """

    name = "remax"
    reference = "arXiv:2310.10505"
    equivalents = (
        verl_advantage("compute_remax_outcome_advantage", "remax", settings=f"reward_baselines = baseline_rewards; {TOKENS}"),
    )
    level: ClassVar[str] = "token"
    inputs = (REWARDS, BASELINE_REWARDS, TOKEN_REWARDS, COMPLETION_MASK)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards, mask = token_rewards(inputs)
        returns = discounted_returns(rewards, mask, 1.0)
        baseline = upcast(inputs["baseline_rewards"]).to(returns.dtype).unsqueeze(-1)
        self.record_metrics(baseline_mean=baseline.mean())
        return torch.where(mask, returns - baseline, torch.zeros((), dtype=returns.dtype, device=returns.device))
