"""Advantage helpers for the on-policy losses: group-normalised (GRPO), leave-one-out (RLOO), GAE.

Thin wrappers over the registered estimators of :mod:`swift_loss_zoo.advantages` (``grpo``, ``rloo``,
``gae``) for code that has TRL's layout at hand: the ``G = num_generations`` completions of one
prompt are consecutive, ``rewards[g * G:(g + 1) * G]``. Run without gradients (advantages are
targets, not model outputs).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from swift_loss_zoo.advantages import GAEAdvantage, GRPOAdvantage, RLOOAdvantage

GROUP_SCALES = ("group", "batch", "none")


def _group_ids(function: str, rewards: torch.Tensor, num_generations: int, minimum: int) -> torch.Tensor:
    """``[B]`` group ids of TRL's consecutive layout, after checking it."""
    if rewards.dim() != 1:
        message = f"{function}: rewards must be a 1-D tensor [B], got shape {tuple(rewards.shape)}"
        raise ValueError(message)
    if isinstance(num_generations, bool) or not isinstance(num_generations, int) or num_generations < minimum:
        message = f"{function}: num_generations must be an int >= {minimum}, got {num_generations!r}"
        raise ValueError(message)
    if rewards.numel() % num_generations:
        message = (
            f"{function}: the batch must hold whole groups: B={rewards.numel()} rewards is not a multiple "
            f"of num_generations={num_generations}"
        )
        raise ValueError(message)
    return torch.arange(rewards.numel(), device=rewards.device) // num_generations


@torch.no_grad()
def group_advantages(
    rewards: torch.Tensor,
    num_generations: int,
    *,
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    r"""GRPO advantages: each reward minus its group's mean, optionally over a standard deviation.

    .. math::
        A_i = \frac{r_i - \mathrm{mean}_{j \in g(i)} r_j}{\mathrm{std} + \varepsilon}

    ``scale="group"``: the std of the group (DeepSeekMath, arXiv:2402.03300); ``"batch"``: the std of
    all rewards (Dr. GRPO's robust alternative, TRL ``scale_rewards="batch"``); ``"none"``: no
    division (Dr. GRPO, arXiv:2503.20783). Standard deviations are Bessel-corrected as in TRL
    (``torch.std``), ``eps=1e-4`` as TRL. A group of equal rewards gets advantages 0.

    :param rewards: ``[B]`` scalar rewards, ``B`` a multiple of ``num_generations``.
    :returns: ``[B]`` advantages in float32 at least.
    """
    if scale not in GROUP_SCALES:
        message = f"group_advantages: scale must be one of {', '.join(GROUP_SCALES)}, got {scale!r}"
        raise ValueError(message)
    minimum = 2 if scale == "group" else 1
    group_ids = _group_ids("group_advantages", rewards, num_generations, minimum)
    estimator = GRPOAdvantage(scale_rewards=scale, eps=eps)
    return estimator({"rewards": rewards.to(torch.promote_types(rewards.dtype, torch.float32)), "group_ids": group_ids})


@torch.no_grad()
def rloo_advantages(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    r"""REINFORCE leave-one-out advantages: each reward minus the mean of the *other* rewards of its group.

    .. math::
        A_i = r_i - \frac{1}{G-1}\sum_{j \in g(i),\, j \ne i} r_j = \frac{G}{G-1}\big(r_i - \bar r_{g(i)}\big)

    Ahmadian et al., arXiv:2402.14740 (Kool et al. 2019); TRL ``RLOOTrainer``. Needs ``G >= 2``.

    :param rewards: ``[B]`` scalar rewards (fold any KL penalty in beforehand), ``B`` a multiple of
        ``num_generations``.
    """
    group_ids = _group_ids("rloo_advantages", rewards, num_generations, 2)
    return RLOOAdvantage()({"rewards": rewards.to(torch.promote_types(rewards.dtype, torch.float32)),
                            "group_ids": group_ids})


class GAEResult(NamedTuple):
    """Per-token advantages (whitened when asked) and returns (raw advantages + values)."""

    advantages: torch.Tensor
    returns: torch.Tensor


@torch.no_grad()
def gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    whiten: bool = True,
) -> GAEResult:
    r"""Generalized Advantage Estimation over each completion's counted tokens (Schulman et al.,
    arXiv:1506.02438), as in TRL's ``PPOTrainer``.

    Over the counted positions :math:`t_1 < t_2 < \dots < t_n` of a row (``mask`` true), with
    :math:`V_{t_{n+1}} = 0` after the last one:

    .. math::
        \delta_k = r_{t_k} + \gamma V_{t_{k+1}} - V_{t_k},\qquad
        \hat A_{t_k} = \delta_k + \gamma\lambda \hat A_{t_{k+1}},\qquad G_{t_k} = \hat A_{t_k} + V_{t_k}

    Masked positions are skipped (not treated as steps): for right padding this is exactly TRL's
    recursion on zero-filled padding; a masked span inside a completion (tool output) is bridged.
    With ``whiten`` the advantages are whitened over all counted tokens of the batch
    (:func:`swift_zoo.ops.masked_whiten`, Bessel-corrected, as TRL); returns use the raw advantages.
    Masked positions come back as 0. Defaults ``gamma=1.0``, ``lam=0.95`` (TRL ``PPOConfig``).

    :param rewards: ``[B, T]`` per-token rewards (e.g. ``-kl_coef * kl`` plus the score on the last
        completion token).
    :param values: ``[B, T]`` value estimates at rollout time.
    :param mask: ``[B, T]`` 1 on counted completion tokens.
    """
    if rewards.dim() != 2 or values.shape != rewards.shape or mask.shape != rewards.shape:
        message = (
            "gae_advantages: rewards, values and mask must share one [B, T] shape, got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)} and {tuple(mask.shape)}"
        )
        raise ValueError(message)
    for key, value in (("gamma", gamma), ("lam", lam)):
        if not 0.0 <= value <= 1.0:
            message = f"gae_advantages: {key} must be in [0, 1], got {value!r}"
            raise ValueError(message)
    dtype = torch.promote_types(torch.promote_types(rewards.dtype, values.dtype), torch.float32)
    estimator = GAEAdvantage(gamma=gamma, lam=lam, whiten=whiten)
    advantages = estimator({"rewards": torch.zeros(rewards.shape[0], dtype=dtype, device=rewards.device),
                            "token_rewards": rewards.to(dtype), "values": values.to(dtype), "completion_mask": mask})
    return GAEResult(advantages, estimator.outputs["returns"])
