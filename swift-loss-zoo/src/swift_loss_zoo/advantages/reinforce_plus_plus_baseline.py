"""REINFORCE++ with a group baseline: group-centred rewards, whitened over the batch's tokens."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import GROUPS, TOKENS, verl_advantage
from swift_loss_zoo.advantages._groups import group_normalised, groups_of, reward_metrics
from swift_loss_zoo.advantages._inputs import COMPLETION_MASK, GROUP_IDS, REWARDS, TOKEN_REWARDS
from swift_loss_zoo.advantages._token_rewards import token_rewards
from swift_loss_zoo.advantages._whitening import whiten_over_tokens


class ReinforcePlusPlusBaselineAdvantage(ZooAdvantage):
    r"""REINFORCE++-baseline: the group mean as baseline, then a batch whitening instead of GRPO's group std.

    .. math::
        s_i = \sum_t R_{i,t},\qquad A_i = \mathrm{whiten}\big(s_i - \mathrm{mean}_{j \in g(i)}\, s_j\big)

    with :math:`R_{i,t}` the per-token rewards (``token_rewards`` plus the score on the last counted
    token) and the whitening over the batch's counted tokens (a response weighs by its length;
    ``(x - mean) / sqrt(var + 1e-8)``, Bessel-corrected), as verl. Whitening by the batch rather than
    the group std avoids GRPO's up-weighting of low-variance prompts. A group of one response is
    centred to 0. Level: **sequence** (constant over a response's tokens).

    Paper: Hu, arXiv:2501.03262. No hyperparameters. Inputs: ``rewards [B]``, ``token_rewards [B, T]``
    (optional), ``group_ids [B]``, ``completion_mask [B, T]``.

    .. code-block:: yaml

        training_args:
          advantage_type: reinforce_plus_plus_baseline
    """

    name = "reinforce_plus_plus_baseline"
    reference = "arXiv:2501.03262"
    equivalents = (
        verl_advantage("compute_reinforce_plus_plus_baseline_outcome_advantage", "reinforce_plus_plus_baseline",
                       settings=f"{GROUPS}; {TOKENS}"),
    )
    level: ClassVar[str] = "sequence"
    inputs = (REWARDS, TOKEN_REWARDS, GROUP_IDS, COMPLETION_MASK)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards, mask = token_rewards(inputs)
        scores = rewards.sum(-1)
        groups = groups_of(inputs["group_ids"])
        self.record_metrics(**reward_metrics(scores, groups))
        centred = group_normalised(scores, groups, scale="none", unbiased=True, eps=0.0)
        return whiten_over_tokens(centred, mask)
