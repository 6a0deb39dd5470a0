"""GRPO and Dr. GRPO advantages: each reward against its group's mean (and std)."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import GROUPS, verl_advantage
from swift_loss_zoo.advantages._groups import group_normalised, groups_of, reward_metrics
from swift_loss_zoo.advantages._inputs import GROUP_IDS, REWARDS
from swift_zoo.losses import require_bool, require_choice, require_non_negative
from swift_zoo.ops import upcast

SCALES = ("group", "batch", "none")


class GRPOAdvantage(ZooAdvantage):
    r"""Group-relative advantages (DeepSeekMath's outcome supervision).

    .. math::
        A_i = \frac{r_i - \mathrm{mean}_{j \in g(i)}\, r_j}{\mathrm{std}_{j \in g(i)}\, r_j + \varepsilon}

    ``scale_rewards="group"``: the std of the response's group (the paper; verl
    ``norm_adv_by_std_in_grpo=True``); ``"batch"``: the std of every reward in the batch (TRL
    ``scale_rewards="batch"``, robust to groups of equal rewards); ``"none"``: no division (Dr. GRPO,
    verl ``norm_adv_by_std_in_grpo=False``). ``unbiased_std`` Bessel-corrects the std (``torch.std``, as
    verl and TRL). A group of equal rewards gets 0; a group of one response gets 0 (no relative signal;
    verl gives it its raw reward). Level: **sequence** (``[B]``).

    Paper: Shao et al., arXiv:2402.03300. Defaults as verl ``compute_grpo_outcome_advantage``:
    ``scale_rewards="group"``, ``unbiased_std=True``, ``eps=1e-6`` (TRL uses ``eps=1e-4``). Inputs:
    ``rewards [B]``, ``group_ids [B]``. Metrics: ``reward_mean``, ``reward_std``, ``zero_std_fraction``
    (responses whose group has equal rewards).

    .. code-block:: yaml

        training_args:
          advantage_type: grpo
          advantage_kwargs: {scale_rewards: group, eps: 1.0e-6}
    """

    name = "grpo"
    reference = "arXiv:2402.03300"
    equivalents = (
        verl_advantage("compute_grpo_outcome_advantage", "grpo", settings=f"norm_adv_by_std_in_grpo=True, epsilon=eps; {GROUPS}"),
        verl_advantage("compute_grpo_outcome_advantage", "grpo", zoo_kwargs={"scale_rewards": "none"},
                       settings=f"norm_adv_by_std_in_grpo=False; {GROUPS}"),
    )
    level: ClassVar[str] = "sequence"
    inputs = (REWARDS, GROUP_IDS)

    def __init__(self, *, scale_rewards: Literal["group", "batch", "none"] = "group", unbiased_std: bool = True,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.scale_rewards = require_choice(self.display_name, "scale_rewards", scale_rewards, SCALES)
        self.unbiased_std = require_bool(self.display_name, "unbiased_std", unbiased_std)
        self.eps = require_non_negative(self.display_name, "eps", eps)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards = upcast(inputs["rewards"])
        groups = groups_of(inputs["group_ids"])
        self.record_metrics(**reward_metrics(rewards, groups))
        return group_normalised(rewards, groups, scale=self.scale_rewards, unbiased=self.unbiased_std, eps=self.eps)


class DrGRPOAdvantage(GRPOAdvantage):
    r"""Dr. GRPO advantages: each reward minus its group's mean, not divided by the std.

    .. math::
        A_i = r_i - \mathrm{mean}_{j \in g(i)}\, r_j

    Dividing by the group std up-weights prompts that are too easy or too hard (low std), a bias the
    paper removes; pair it with the ``dr_grpo`` loss. The same as ``grpo`` with ``scale_rewards="none"``
    (verl ``norm_adv_by_std_in_grpo=False``, TRL ``scale_rewards="none"``). A group of one response gets 0.
    Level: **sequence**.

    Paper: Liu et al., arXiv:2503.20783. No hyperparameters. Inputs: ``rewards [B]``, ``group_ids [B]``.

    .. code-block:: yaml

        training_args:
          advantage_type: dr_grpo
    """

    name = "dr_grpo"
    reference = "arXiv:2503.20783"
    equivalents = (
        verl_advantage("compute_grpo_outcome_advantage", "grpo", settings=f"norm_adv_by_std_in_grpo=False; {GROUPS}"),
    )

    def __init__(self) -> None:
        super().__init__(scale_rewards="none")
