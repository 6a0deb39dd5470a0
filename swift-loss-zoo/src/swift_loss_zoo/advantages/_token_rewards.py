"""Per-token rewards of a response: its score on the last counted token plus any per-token terms."""

from __future__ import annotations

import torch

from swift_zoo.ops import upcast


def last_counted(mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool: each row's last counted position (none for a row without any)."""
    positions = torch.arange(mask.shape[-1], device=mask.device)
    last = torch.where(mask, positions, -1).amax(-1, keepdim=True)
    return (positions == last) & mask


def token_rewards(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B, T] rewards, [B, T] bool mask)``: ``token_rewards`` (0 when absent) with ``rewards`` added on the
    last counted token; 0 wherever the mask is false."""
    mask = inputs["completion_mask"] != 0
    score = upcast(inputs["rewards"])
    extra = inputs.get("token_rewards")
    zero = torch.zeros((), dtype=score.dtype, device=score.device)
    per_token = torch.zeros(mask.shape, dtype=score.dtype, device=score.device) if extra is None else \
        torch.where(mask, extra.to(score.dtype), zero)
    per_token = per_token + torch.where(last_counted(mask), score.unsqueeze(-1), zero)
    return per_token, mask


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    r""":math:`G_t = r_t + \gamma G_{t'}` over each row's counted positions (:math:`t'` the next counted one;
    masked positions are skipped, not steps), 0 at masked positions."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = torch.where(mask[:, t], rewards[:, t] + gamma * running, running)
        returns[:, t] = torch.where(mask[:, t], running, torch.zeros_like(running))
    return returns
