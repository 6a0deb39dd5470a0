"""Pass@k advantages: only each group's best response is reinforced, by its lead over the runner-up."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import GROUPS, verl_advantage
from swift_loss_zoo.advantages._groups import group_std, groups_of, reward_metrics, singleton
from swift_loss_zoo.advantages._inputs import GROUP_IDS, REWARDS
from swift_zoo.losses import require_bool, require_non_negative
from swift_zoo.ops import upcast


class GRPOPassKAdvantage(ZooAdvantage):
    r"""GRPO-style advantages for Pass@k training.

    .. math::
        A_i = \begin{cases}\dfrac{r^{(1)}_{g} - r^{(2)}_{g}}{\mathrm{std}_{j \in g}\, r_j + \varepsilon}
              & i \text{ is the best response of its group } g\\ 0 & \text{otherwise}\end{cases}

    with :math:`r^{(1)} \ge r^{(2)}` the two largest rewards of the group: the objective rewards a
    group whose best sample improves, whatever the others do. When the best reward is tied the lead is
    0, so every response gets 0 (the choice of "the" best one does not matter). ``scale_rewards=False``
    leaves out the division by the (Bessel-corrected) group std. A group of one response gets 0 (verl
    raises). Level: **sequence**.

    Paper: arXiv:2503.19595. Defaults as verl ``compute_grpo_passk_outcome_advantage``:
    ``scale_rewards=True`` (``norm_adv_by_std_in_grpo``), ``eps=1e-6``. Inputs: ``rewards [B]``,
    ``group_ids [B]``.

    .. code-block:: yaml

        training_args:
          advantage_type: grpo_passk
          advantage_kwargs: {scale_rewards: true}
    """

    name = "grpo_passk"
    reference = "arXiv:2503.19595"
    equivalents = (
        verl_advantage("compute_grpo_passk_outcome_advantage", "grpo_passk",
                       settings=f"norm_adv_by_std_in_grpo = scale_rewards; {GROUPS} (verl raises for one)"),
    )
    level: ClassVar[str] = "sequence"
    inputs = (REWARDS, GROUP_IDS)

    def __init__(self, *, scale_rewards: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.scale_rewards = require_bool(self.display_name, "scale_rewards", scale_rewards)
        self.eps = require_non_negative(self.display_name, "eps", eps)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards = upcast(inputs["rewards"])
        groups = groups_of(inputs["group_ids"])
        self.record_metrics(**reward_metrics(rewards, groups))
        count = groups.count.numel()
        lowest = torch.full((count,), float("-inf"), dtype=rewards.dtype, device=rewards.device)
        best = lowest.scatter_reduce(0, groups.index, rewards, "amax")[groups.index]
        at_best = rewards == best
        ties = torch.zeros(count, dtype=torch.long, device=rewards.device).index_add_(
            0, groups.index, at_best.long())[groups.index]
        below = torch.where(at_best, torch.full_like(rewards, float("-inf")), rewards)
        runner_up = lowest.scatter_reduce(0, groups.index, below, "amax")[groups.index]
        lead = torch.where(ties > 1, torch.zeros_like(rewards), best - runner_up)
        if self.scale_rewards:
            lead = lead / (group_std(rewards, groups) + self.eps)
        keep = at_best & ~singleton(groups)
        return torch.where(keep, lead, torch.zeros_like(rewards))
