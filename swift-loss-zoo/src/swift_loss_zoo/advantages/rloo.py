"""RLOO advantages: each reward minus the mean of the other rewards of its group."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import GROUPS, verl_advantage
from swift_loss_zoo.advantages._groups import group_sum, groups_of, reward_metrics, singleton
from swift_loss_zoo.advantages._inputs import GROUP_IDS, REWARDS
from swift_zoo.ops import upcast


class RLOOAdvantage(ZooAdvantage):
    r"""REINFORCE leave-one-out advantages.

    .. math::
        A_i = r_i - \frac{1}{|g(i)| - 1}\sum_{j \in g(i),\, j \ne i} r_j
            = \frac{|g(i)|}{|g(i)| - 1}\big(r_i - \bar r_{g(i)}\big)

    The baseline excludes the response itself, so it is unbiased. A group of one response gets 0 (verl
    keeps its raw reward). Level: **sequence**. Fold a KL penalty into the rewards beforehand, as TRL's
    ``RLOOTrainer`` does.

    Paper: Ahmadian et al., arXiv:2402.14740 (after Kool et al. 2019). No hyperparameters. Inputs:
    ``rewards [B]``, ``group_ids [B]``.

    .. code-block:: yaml

        training_args:
          advantage_type: rloo
    """

    name = "rloo"
    reference = "arXiv:2402.14740"
    equivalents = (verl_advantage("compute_rloo_outcome_advantage", "rloo", settings=GROUPS),)
    level: ClassVar[str] = "sequence"
    inputs = (REWARDS, GROUP_IDS)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards = upcast(inputs["rewards"])
        groups = groups_of(inputs["group_ids"])
        self.record_metrics(**reward_metrics(rewards, groups))
        others = (group_sum(rewards, groups) - rewards) / (groups.size - 1).clamp(min=1).to(rewards.dtype)
        return torch.where(singleton(groups), torch.zeros_like(rewards), rewards - others)
