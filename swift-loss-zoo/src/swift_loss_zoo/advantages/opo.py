"""OPO advantages: each reward minus its group's length-weighted mean reward."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import GROUPS, verl_advantage
from swift_loss_zoo.advantages._groups import group_sum, groups_of, reward_metrics, singleton
from swift_loss_zoo.advantages._inputs import COMPLETION_MASK, GROUP_IDS, REWARDS
from swift_zoo.ops import masked_count, upcast


class OPOAdvantage(ZooAdvantage):
    r"""On-Policy RL with Optimal reward baseline.

    .. math::
        A_i = r_i - b_{g(i)},\qquad b_g = \frac{\sum_{j \in g} |o_j|\, r_j}{\sum_{j \in g} |o_j|}

    with :math:`|o_j|` the response's counted tokens: the baseline that minimises the gradient variance
    when every token's gradient has about the same norm. A group of one response gets 0 (verl keeps its
    raw reward). Level: **sequence**.

    Paper: Hao et al., arXiv:2505.23585. No hyperparameters. Inputs: ``rewards [B]``, ``group_ids [B]``,
    ``completion_mask [B, T]``.

    .. code-block:: yaml

        training_args:
          advantage_type: opo
    """

    name = "opo"
    reference = "arXiv:2505.23585"
    equivalents = (verl_advantage("compute_opo_outcome_advantage", "opo", settings=GROUPS),)
    level: ClassVar[str] = "sequence"
    inputs = (REWARDS, GROUP_IDS, COMPLETION_MASK)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards = upcast(inputs["rewards"])
        groups = groups_of(inputs["group_ids"])
        lengths = masked_count(inputs["completion_mask"] != 0, -1).to(rewards.dtype)
        self.record_metrics(**reward_metrics(rewards, groups))
        baseline = group_sum(lengths * rewards, groups) / group_sum(lengths, groups).clamp(min=1)
        return torch.where(singleton(groups), torch.zeros_like(rewards), rewards - baseline)
