"""CAME's update of one whole tensor (Luo et al., arXiv:2307.02047), and the factored estimate it shares with its
FSDP2 form (:mod:`swift_optim_zoo.came._sharded`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def factored_rsqrt(row: torch.Tensor, col: torch.Tensor, *, row_mean: torch.Tensor | None = None) -> torch.Tensor:
    r"""Adafactor's rank-1 estimate :math:`(R C^\top / \mathrm{sum}(R))^{-1/2}` from row and column means
    (``[..., m]``, ``[..., n]``), as ``[..., m, n]``. ``row_mean``: the mean of the whole ``R`` when ``row`` holds
    only some of its rows (FSDP2), else computed from ``row``."""
    row_mean = row.mean(dim=-1, keepdim=True) if row_mean is None else row_mean
    row_factor = (row / row_mean).rsqrt().unsqueeze(-1)
    return row_factor * col.unsqueeze(-2).rsqrt()


def came_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
    """One CAME step on one whole tensor (a pure function of full matrices and their state)."""
    beta1, beta2, beta3 = group["betas"]
    eps1, eps2 = group["eps"]
    grad = grad.float() if grad.dtype in (torch.bfloat16, torch.float16) else grad
    squared = grad * grad + eps1
    if "exp_avg_sq_row" in state:
        state["exp_avg_sq_row"].mul_(beta2).add_(squared.mean(dim=-1), alpha=1 - beta2)
        state["exp_avg_sq_col"].mul_(beta2).add_(squared.mean(dim=-2), alpha=1 - beta2)
        update = factored_rsqrt(state["exp_avg_sq_row"], state["exp_avg_sq_col"]).mul_(grad)
    else:
        state["exp_avg_sq"].mul_(beta2).add_(squared, alpha=1 - beta2)
        update = state["exp_avg_sq"].rsqrt().mul_(grad)
    rms = update.square().mean().sqrt()
    update.div_((rms / group["clip_threshold"]).clamp(min=1.0))
    exp_avg = state["exp_avg"]
    exp_avg.mul_(beta1).add_(update, alpha=1 - beta1)
    if "exp_avg_res_row" in state:
        residual = (update - exp_avg).square_().add_(eps2)
        state["exp_avg_res_row"].mul_(beta3).add_(residual.mean(dim=-1), alpha=1 - beta3)
        state["exp_avg_res_col"].mul_(beta3).add_(residual.mean(dim=-2), alpha=1 - beta3)
        update = factored_rsqrt(state["exp_avg_res_row"], state["exp_avg_res_col"]).mul_(exp_avg)
    else:
        update = exp_avg
    if group["weight_decay"] != 0:
        param.mul_(1 - group["lr"] * group["weight_decay"])
    param.sub_(update.to(param.dtype), alpha=group["lr"])
