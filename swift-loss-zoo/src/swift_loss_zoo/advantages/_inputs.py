"""Declared inputs and example batches of the advantage estimators.

Names follow :class:`swift_zoo.advantages.BaseAdvantage`: ``rewards [B]`` (one score per response, or
``[B, K]`` for K reward functions), ``group_ids [B]`` (int labels of the prompt each response answers),
``completion_mask [B, T]``, ``token_rewards [B, T]`` (per-token terms such as ``-beta * KL``, added to the
score, which sits on each response's last counted token), ``values [B, T]``, ``baseline_rewards [B]``.
"""

from __future__ import annotations

import torch

from swift_zoo.losses import TensorInput

_TOKENS = ("B", "T")

REWARDS = TensorInput("rewards", ("B",), doc="one scalar reward per response")
MULTI_REWARDS = TensorInput("rewards", ("B", "K"), doc="K rewards per response, one column per reward function")
GROUP_IDS = TensorInput("group_ids", ("B",), dtype="int", doc="responses to the same prompt share an id")
COMPLETION_MASK = TensorInput("completion_mask", _TOKENS, dtype="mask", role="mask",
                              doc="1 on the response's counted tokens")
TOKEN_REWARDS = TensorInput("token_rewards", _TOKENS, optional=True, masked_by="completion_mask",
                            doc="per-token rewards added to the score (e.g. -beta * KL); absent = 0")
VALUES = TensorInput("values", _TOKENS, masked_by="completion_mask", doc="critic values at rollout time")
BASELINE_REWARDS = TensorInput("baseline_rewards", ("B",), doc="reward of a baseline response (ReMax: greedy)")


def example_batch(*, batch_size: int = 8, generator: torch.Generator | None = None,
                  device: str | torch.device = "cpu", group_size: int = 4, seq: int = 6,
                  reward_functions: int | None = None) -> dict[str, torch.Tensor]:
    """Every input an estimator may declare: groups of ``group_size`` (the last one smaller when ``batch_size``
    is not a multiple), integer-valued rewards with ties, right-padded masks with a masked tool span."""
    shape = (batch_size,) if reward_functions is None else (batch_size, reward_functions)
    rewards = torch.randint(0, 4, shape, generator=generator).to(torch.float32)
    lengths = torch.randint(2, seq + 1, (batch_size,), generator=generator)
    mask = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).long()
    if batch_size > 1 and seq > 3:
        mask[1, 1] = 0
    batch = {
        "rewards": rewards,
        "group_ids": torch.arange(batch_size) // group_size * 7 + 3,  # labels, not positions
        "completion_mask": mask,
        "token_rewards": 0.1 * torch.randn(batch_size, seq, generator=generator),
        "values": torch.randn(batch_size, seq, generator=generator),
        "baseline_rewards": torch.randint(0, 4, (batch_size,), generator=generator).to(torch.float32),
    }
    return {key: value.to(device) for key, value in batch.items()}
