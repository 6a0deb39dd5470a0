"""Per-group statistics of responses to the same prompt, vectorised over the batch.

Responses sharing a ``group_ids`` value form a group; the ids are labels only (any integers, any order).
A group of one response has no relative signal: the estimators give it advantage 0 (TRL's convention;
verl instead uses baseline 0 and std 1 there, so its advantage is the raw reward).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Groups(NamedTuple):
    index: torch.Tensor  # [B] group of each response, 0..G-1
    count: torch.Tensor  # [G] responses per group
    size: torch.Tensor  # [B] size of each response's group


def groups_of(group_ids: torch.Tensor) -> Groups:
    """The groups ``group_ids`` defines."""
    _, index = torch.unique(group_ids, return_inverse=True)
    count = torch.bincount(index)
    return Groups(index, count, count[index])


def group_sum(x: torch.Tensor, groups: Groups) -> torch.Tensor:
    """``[B, ...]`` the sum of ``x`` over each response's group."""
    totals = torch.zeros((groups.count.numel(), *x.shape[1:]), dtype=x.dtype, device=x.device)
    return totals.index_add_(0, groups.index, x)[groups.index]


def _per_response(size: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return size.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def group_mean(x: torch.Tensor, groups: Groups) -> torch.Tensor:
    """``[B, ...]`` the mean of ``x`` over each response's group."""
    return group_sum(x, groups) / _per_response(groups.size, x)


def group_std(x: torch.Tensor, groups: Groups, *, unbiased: bool = True) -> torch.Tensor:
    """``[B, ...]`` the standard deviation of ``x`` over each response's group (0 for a group of one)."""
    centred = x - group_mean(x, groups)
    size = _per_response(groups.size, x)
    denominator = (size - 1).clamp(min=1) if unbiased else size
    return torch.sqrt(group_sum(centred.square(), groups) / denominator)


def singleton(groups: Groups) -> torch.Tensor:
    """``[B]`` bool: the response is alone in its group."""
    return groups.size == 1


def group_normalised(x: torch.Tensor, groups: Groups, *, scale: str, unbiased: bool, eps: float) -> torch.Tensor:
    """``x`` minus its group mean, over ``std + eps`` (``scale``: ``group`` std, ``batch`` std, or ``none``).

    ``x`` is ``[B]`` or ``[B, K]`` (each column on its own); a group of one gets 0.
    """
    centred = x - group_mean(x, groups)
    if scale == "group":
        centred = centred / (group_std(x, groups, unbiased=unbiased) + eps)
    elif scale == "batch":
        spread = x.std(dim=0, unbiased=unbiased) if x.shape[0] > 1 else torch.zeros_like(x[0])
        centred = centred / (spread + eps)
    alone = singleton(groups).reshape(-1, *([1] * (x.dim() - 1)))
    return torch.where(alone, torch.zeros((), dtype=x.dtype, device=x.device), centred)


def reward_metrics(rewards: torch.Tensor, groups: Groups) -> dict[str, torch.Tensor]:
    """``reward_mean``, ``reward_std`` and ``zero_std_fraction`` (responses in a group of 2+ equal rewards)."""
    spread = group_std(rewards, groups, unbiased=False)
    degenerate = (spread == 0) & ~singleton(groups).reshape(-1, *([1] * (rewards.dim() - 1)))
    std = rewards.std() if rewards.numel() > 1 else torch.zeros((), dtype=rewards.dtype)
    return {"reward_mean": rewards.mean(), "reward_std": std, "zero_std_fraction": degenerate.float().mean()}
