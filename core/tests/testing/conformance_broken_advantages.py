"""A small correct advantage estimator and deliberately broken variants, one defect each, for the meta-tests."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_zoo import TensorInput
from swift_zoo.advantages import BaseAdvantage

REWARDS = TensorInput("rewards", ("B",))
GROUP_IDS = TensorInput("group_ids", ("B",), dtype="int")
MASK = TensorInput("completion_mask", ("B", "T"), dtype="mask", role="mask")
TOKEN_REWARDS = TensorInput("token_rewards", ("B", "T"), masked_by="completion_mask")


def _group_mean(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    _, index = torch.unique(group_ids, return_inverse=True)
    count = torch.bincount(index).to(rewards.dtype)
    total = torch.zeros_like(count).index_add_(0, index, rewards)
    return (total / count)[index]


class GroupMeanAdvantage(BaseAdvantage):
    r"""Reward minus its group's mean (the reference the broken variants start from).

    .. math::
        A_i = r_i - \mathrm{mean}_{j \in g(i)}\, r_j
    """

    name = "group_mean_advantage"
    reference = "arXiv:2402.03300"
    inputs = (REWARDS, GROUP_IDS)

    def __init__(self, *, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def compute(self, inputs):
        rewards = inputs["rewards"].float()
        return self.scale * (rewards - _group_mean(rewards, inputs["group_ids"]))

    @classmethod
    def example_inputs(cls, *, batch_size=8, generator=None, device="cpu"):
        return {"rewards": torch.randint(0, 4, (batch_size,), generator=generator).float(),
                "group_ids": torch.arange(batch_size) // 4}


class TokenReturnAdvantage(BaseAdvantage):
    r"""Per-token return-to-go of token rewards plus the group-centred score (token level, masked).

    .. math::
        A_{i,t} = \sum_{t' \ge t} m_{i,t'} R_{i,t'} + r_i - \bar r_{g(i)}
    """

    name = "token_return_advantage"
    reference = "arXiv:2501.03262"
    level: ClassVar[str] = "token"
    inputs = (REWARDS, GROUP_IDS, TOKEN_REWARDS, MASK)

    def token_values(self, inputs):
        mask = inputs["completion_mask"] != 0
        rewards = torch.where(mask, inputs["token_rewards"].float(), 0.0)
        return rewards.flip(-1).cumsum(-1).flip(-1), mask

    def compute(self, inputs):
        returns, mask = self.token_values(inputs)
        score = inputs["rewards"].float()
        centred = score - _group_mean(score, inputs["group_ids"])
        return torch.where(mask, returns + centred.unsqueeze(-1), 0.0)

    @classmethod
    def example_inputs(cls, *, batch_size=8, generator=None, device="cpu"):
        mask = torch.ones(batch_size, 5, dtype=torch.long)
        mask[::2, 3:] = 0
        return {**GroupMeanAdvantage.example_inputs(batch_size=batch_size, generator=generator),
                "token_rewards": torch.randn(batch_size, 5, generator=generator), "completion_mask": mask}


class WrongShapeAdvantage(GroupMeanAdvantage):
    """Returns ``[B, 1]`` for a sequence-level estimator: ``A = r - mean``."""

    name = "wrong_shape_advantage"

    def compute(self, inputs):
        return super().compute(inputs).unsqueeze(-1)


class GradAdvantage(GroupMeanAdvantage):
    """Skips the ``no_grad`` of ``forward``, so the advantages carry a gradient: ``A = r - mean``."""

    name = "grad_advantage"

    def forward(self, batch):
        return self.compute(dict(batch))


class RandomAdvantage(GroupMeanAdvantage):
    """Adds noise: ``A = r - mean + eps``."""

    name = "random_advantage"

    def compute(self, inputs):
        return super().compute(inputs) + 1e-3 * torch.randn(inputs["rewards"].shape)


class MutatingAdvantage(GroupMeanAdvantage):
    """Centres the caller's rewards in place: ``r <- r - mean``."""

    name = "mutating_advantage"

    def compute(self, inputs):
        rewards = inputs["rewards"]
        rewards.sub_(_group_mean(rewards.float(), inputs["group_ids"]))
        return rewards.float()


class PositionalGroupAdvantage(GroupMeanAdvantage):
    """Takes groups as consecutive blocks of 4 (TRL's layout) instead of reading ``group_ids``: ``A = r - mean``."""

    name = "positional_group_advantage"

    def compute(self, inputs):
        rewards = inputs["rewards"].float()
        return rewards - _group_mean(rewards, torch.arange(rewards.numel()) // 4)


class IdValueAdvantage(GroupMeanAdvantage):
    """Uses the group ids as numbers: ``A = r - mean + 0.01 * id``."""

    name = "id_value_advantage"

    def compute(self, inputs):
        return super().compute(inputs) + 0.01 * inputs["group_ids"].float()


class NoEpsAdvantage(GroupMeanAdvantage):
    """Divides by the group std without an epsilon: ``A = (r - mean) / std``, NaN for a group of equal rewards."""

    name = "no_eps_advantage"

    def compute(self, inputs):
        centred = super().compute(inputs)
        return centred / _group_mean(centred.square(), inputs["group_ids"]).sqrt()


class LeakyMaskAdvantage(TokenReturnAdvantage):
    """Sums the token rewards at masked positions too: ``A_t = sum_{t' >= t} R_t' + r - mean``."""

    name = "leaky_mask_advantage"

    def token_values(self, inputs):
        mask = inputs["completion_mask"] != 0
        return inputs["token_rewards"].float().flip(-1).cumsum(-1).flip(-1), mask


class UnmaskedOutputAdvantage(TokenReturnAdvantage):
    """Leaves the group-centred score on masked positions: ``A_t = return_t + r - mean`` everywhere."""

    name = "unmasked_output_advantage"

    def compute(self, inputs):
        returns, _ = self.token_values(inputs)
        score = inputs["rewards"].float()
        return returns + (score - _group_mean(score, inputs["group_ids"])).unsqueeze(-1)


class MissingOutputAdvantage(GroupMeanAdvantage):
    """Declares ``extra_outputs = ("returns",)`` and never records them: ``A = r - mean``."""

    name = "missing_output_advantage"
    extra_outputs: ClassVar[tuple[str, ...]] = ("returns",)


class HalfOverflowAdvantage(GroupMeanAdvantage):
    """Squares and scales in the input dtype (float16 overflows): ``A = c r^2 / max(c r^2)``."""

    name = "half_overflow_advantage"

    def compute(self, inputs):
        scaled = inputs["rewards"] * inputs["rewards"] * 1e4
        return (scaled / scaled.max()).float()


class KwargsAdvantage(GroupMeanAdvantage):
    """Accepts ``**kwargs``, so a typo is silently ignored: ``A = r - mean``."""

    name = "kwargs_advantage"

    def __init__(self, **kwargs) -> None:
        super().__init__()


class BadMetadataAdvantage(GroupMeanAdvantage):
    name = "Bad-Name"
    reference = ""
    level: ClassVar[str] = "sequence"
