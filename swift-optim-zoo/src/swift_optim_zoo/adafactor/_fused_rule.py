"""Adafactor's per-parameter step as one fused kernel (``Adafactor(fused=True)``; see :mod:`swift_optim_zoo._fused`).

The same arithmetic as :func:`~swift_optim_zoo.adafactor._rule.adafactor_update` followed by the
parameter update of :class:`~swift_optim_zoo.adafactor.Adafactor`, with the parameter RMS and the
update RMS computed inside the kernel (no host synchronisation). Matrices use the factored kernel,
1-D tensors the unfactored one; tensors of 3 or more dimensions (expert stacks, convolutions) take
the eager path (:func:`fused_adafactor_step` returns ``False``), which keeps the number of compiled
variants small.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from swift_optim_zoo._fused import FusedKernel, alias


def _finish(param: torch.Tensor, update: torch.Tensor, exp_avg: torch.Tensor | None, hyper: torch.Tensor,
            param_mean_square: torch.Tensor) -> None:
    """RMS clipping, step size, optional momentum, weight decay and the parameter write."""
    size, eps2, clip_threshold, weight_decay, beta1, scale_parameter = (hyper[i] for i in (0, 1, 4, 5, 6, 7))
    scaled = torch.clamp(param_mean_square.sqrt(), min=eps2) * size
    step_size = torch.where(scale_parameter > 0, scaled, size)
    update = update * (step_size / torch.clamp(update.square().mean().sqrt() / clip_threshold, min=1.0))
    if exp_avg is not None:
        exp_avg.mul_(beta1).add_(update * (1 - beta1))
        update = exp_avg
    param.copy_(param.to(hyper.dtype) * (1 - weight_decay * step_size) - update)


def _factored_statistics_rule(param: torch.Tensor, grad: torch.Tensor, row: torch.Tensor, col: torch.Tensor,
                              hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First loop over a matrix: the row/column statistics, updated in place; returns the row and column
    factors of ``1 / sqrt(V)`` and the parameter's per-row sums of squares. ``hyper`` =
    ``(size, eps2, beta2_t, eps1, clip_threshold, weight_decay, beta1, scale_parameter)``."""
    beta2t, eps1 = hyper[2], hyper[3]
    g = grad.to(hyper.dtype)
    squared = g * g
    row.mul_(beta2t).add_((squared.mean(dim=-1) + eps1) * (1 - beta2t))
    col.mul_(beta2t).add_((squared.mean(dim=-2) + eps1) * (1 - beta2t))
    row_factor = (row / row.mean(dim=-1, keepdim=True)).rsqrt()
    return row_factor, col.rsqrt(), param.to(hyper.dtype).square().sum(dim=-1)


def _factored_update_rule(param: torch.Tensor, grad: torch.Tensor, row_factor: torch.Tensor,
                          col_factor: torch.Tensor, param_square_sums: torch.Tensor, exp_avg: torch.Tensor | None,
                          hyper: torch.Tensor) -> None:
    """Second and third loops: the update's RMS, then the write. The factors arrive materialised: inlined,
    inductor would recompute their ``rsqrt`` for every element."""
    update = grad.to(hyper.dtype) * row_factor.unsqueeze(-1) * col_factor.unsqueeze(-2)
    _finish(param, update, exp_avg, hyper, param_square_sums.sum() / param.numel())


def _unfactored_rule(param: torch.Tensor, grad: torch.Tensor, second: torch.Tensor, exp_avg: torch.Tensor | None,
                     hyper: torch.Tensor) -> None:
    """The whole step with a full second moment (1-D parameters); ``hyper`` as for the factored rules."""
    beta2t, eps1 = hyper[2], hyper[3]
    g = grad.to(hyper.dtype)
    second.mul_(beta2t).add_((g * g + eps1) * (1 - beta2t))
    _finish(param, second.rsqrt() * g, exp_avg, hyper, param.to(hyper.dtype).square().mean())


FACTORED_STATISTICS_KERNEL = FusedKernel(_factored_statistics_rule)
FACTORED_UPDATE_KERNEL = FusedKernel(_factored_update_rule)
UNFACTORED_KERNEL = FusedKernel(_unfactored_rule)


def fused_adafactor_step(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any],
                         *, relative_size: float) -> bool:
    """One step of a contiguous ``param`` (``state["step"]`` already advanced); ``relative_size`` is the step
    size before the parameter-RMS scale (``lr``, or the relative-step schedule's value). ``False``: not
    handled (3 or more dimensions), take the eager path."""
    if param.dim() > 2:
        return False
    step = state["step"]
    beta1 = group["beta1"]
    scalars = (relative_size, float(group["eps"][1]), 1.0 - math.pow(step, float(group["decay_rate"])),
               float(group["eps"][0]), float(group["clip_threshold"]), float(group["weight_decay"]),
               0.0 if beta1 is None else float(beta1), 1.0 if group["scale_parameter"] else 0.0)
    exp_avg = state.get("exp_avg")
    if param.dim() == 2:
        rows, cols = param.shape
        param, grad = alias(param, rows, cols), alias(grad, rows, cols)
        statistics = FACTORED_STATISTICS_KERNEL(param, grad, alias(state["exp_avg_sq_row"]),
                                                alias(state["exp_avg_sq_col"]), scalars=scalars, owner="adafactor")
        FACTORED_UPDATE_KERNEL(param, grad, *statistics, None if exp_avg is None else alias(exp_avg, rows, cols),
                               scalars=scalars, owner="adafactor")
    else:
        tensors = (param, grad, state["exp_avg_sq"], exp_avg)
        UNFACTORED_KERNEL(*(None if t is None else alias(t) for t in tensors), scalars=scalars, owner="adafactor")
    return True
