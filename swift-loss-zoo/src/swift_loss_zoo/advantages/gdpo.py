"""GDPO advantages: several rewards, each normalised within its group, then summed and whitened."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import GROUPS, TRL, verl_advantage
from swift_loss_zoo.advantages._groups import group_normalised, groups_of
from swift_loss_zoo.advantages._inputs import COMPLETION_MASK, GROUP_IDS, MULTI_REWARDS
from swift_loss_zoo.advantages._whitening import whiten_over_tokens
from swift_zoo import Equivalence, LossInputError
from swift_zoo.losses import require_bool, require_finite, require_non_negative
from swift_zoo.ops import upcast


class GDPOAdvantage(ZooAdvantage):
    r"""Group reward-Decoupled normalization Policy Optimization, for K reward functions.

    .. math::
        A^{(k)}_i = \frac{r^{(k)}_i - \mathrm{mean}_{j \in g(i)}\, r^{(k)}_j}{\mathrm{std}_{j \in g(i)}\, r^{(k)}_j
                    + \varepsilon},\qquad
        S_i = \sum_k w_k A^{(k)}_i,\qquad A_i = \mathrm{whiten}(S)_i

    Normalising each reward on its own before summing keeps a reward with a large spread from drowning
    out the others (GRPO on the summed reward would). The whitening is over the batch's counted tokens
    (each response weighted by its length), as verl: ``(S - mean) / sqrt(var + 1e-8)``, Bessel-corrected.
    A group of one response gets :math:`A^{(k)} = 0`. Level: **sequence** (the advantage is constant
    over a response's tokens).

    Paper: arXiv:2601.05242. Defaults as verl ``compute_gdpo_outcome_advantage``: ``reward_weights=None``
    (all 1), ``scale_rewards=True`` (``norm_adv_by_std_in_grpo``), ``eps=1e-6``. Inputs: ``rewards [B, K]``,
    ``group_ids [B]``, ``completion_mask [B, T]``.

    .. code-block:: yaml

        training_args:
          advantage_type: gdpo
          advantage_kwargs: {reward_weights: [1.0, 0.5]}
    """

    name = "gdpo"
    reference = "arXiv:2601.05242"
    equivalents = (
        verl_advantage("compute_gdpo_outcome_advantage", "gdpo",
                       settings=f"gdpo_reward_keys naming the K reward columns, gdpo_reward_weights = reward_weights, "
                       f"norm_adv_by_std_in_grpo = scale_rewards; {GROUPS}"),
        Equivalence("trl", "GRPOConfig(multi_objective_aggregation='normalize_then_sum')", TRL, {},
                    "reward_weights as here",
                    "TRL normalises each reward in its group with eps 1e-4, then standardises the weighted sum over "
                    "responses, (S - mean) / (std + 1e-4); verl and the zoo whiten it over the batch's tokens "
                    "(a response weighs by its length), (S - mean) / sqrt(var + 1e-8)"),
    )
    level: ClassVar[str] = "sequence"
    inputs = (MULTI_REWARDS, GROUP_IDS, COMPLETION_MASK)
    example_batch_options: ClassVar[dict[str, Any]] = {"reward_functions": 3}

    def __init__(self, *, reward_weights: tuple[float, ...] | None = None, scale_rewards: bool = True,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.reward_weights = None if reward_weights is None else tuple(
            require_finite(self.display_name, f"reward_weights[{i}]", w) for i, w in enumerate(reward_weights))
        self.scale_rewards = require_bool(self.display_name, "scale_rewards", scale_rewards)
        self.eps = require_non_negative(self.display_name, "eps", eps)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards = upcast(inputs["rewards"])
        columns = rewards.shape[1]
        if self.reward_weights is not None and len(self.reward_weights) != columns:
            message = (
                f"gdpo: reward_weights has {len(self.reward_weights)} weights, so model inputs['rewards'] must have "
                f"{len(self.reward_weights)} columns [B, K]; got {tuple(rewards.shape)}"
            )
            raise LossInputError(message)
        weights = torch.tensor(self.reward_weights or (1.0,) * columns, dtype=rewards.dtype, device=rewards.device)
        normalised = group_normalised(rewards, groups_of(inputs["group_ids"]),
                                      scale="group" if self.scale_rewards else "none", unbiased=True, eps=self.eps)
        summed = normalised @ weights
        mask = inputs["completion_mask"] != 0
        self.record_metrics(summed_std=summed.std() if summed.numel() > 1 else 0.0)
        return whiten_over_tokens(summed, mask)
