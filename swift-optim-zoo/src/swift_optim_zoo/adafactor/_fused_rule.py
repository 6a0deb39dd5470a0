r"""Adafactor's per-parameter step with ``fused=True`` (see :mod:`swift_optim_zoo._fused`).

The same arithmetic as :func:`~swift_optim_zoo.adafactor._rule.adafactor_update` followed by the
parameter update of :class:`~swift_optim_zoo.adafactor.Adafactor`, in as few passes over memory as
the dependencies allow. A matrix needs three: the row/column statistics (plus the parameter's RMS
with ``scale_parameter``), then the RMS of the update (clipping divides the whole update by it),
then the write:

* statistics: :func:`~swift_optim_zoo._native.square_sums`, one read of the gradient for both
  directions (and of the parameter, in the same pass);
* update RMS without forming the update: with :math:`u = g \odot r c^\top`,
  :math:`\sum u^2 = \sum_{ij} r_i^2 g_{ij}^2 c_j^2` (:func:`~swift_optim_zoo._native.weighted_square_sum`);
* the write, with step size, clipping and ``1 - beta1`` folded into the row factor:
  :func:`~swift_optim_zoo._native.factored_write` for float32 on CPU, else one compiled loop
  (:data:`FACTORED_WRITE_KERNEL`: bf16 parameters, CUDA).

On CUDA the statistics are torch reductions and every scalar stays a tensor (no host sync). 1-D
tensors run :data:`UNFACTORED_KERNEL` (the whole step: a C kernel for float32 on CPU, else compiled); tensors of 3 or more dimensions
(expert stacks, convolutions) take the eager path (:func:`fused_adafactor_step` returns ``False``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from swift_optim_zoo import _native_rules
from swift_optim_zoo._fused import FusedKernel, alias, scalar_dtype
from swift_optim_zoo._native import factored_write, square_sums, weighted_square_sum
from swift_optim_zoo.adafactor._rule import update_statistics_from_means


def _finish(param: torch.Tensor, update: torch.Tensor, exp_avg: torch.Tensor | None, param_mean_square: torch.Tensor,
            hyper: torch.Tensor) -> None:
    """RMS clipping, step size, optional momentum, weight decay and the parameter write of a 1-D
    tensor. ``hyper`` = ``(size, eps2, beta2_t, eps1, clip_threshold, weight_decay, beta1, scale_parameter)``."""
    size, eps2, clip_threshold, weight_decay, beta1, scale_parameter = (hyper[i] for i in (0, 1, 4, 5, 6, 7))
    scaled = torch.clamp(param_mean_square.sqrt(), min=eps2) * size
    step_size = torch.where(scale_parameter > 0, scaled, size)
    update = update * (step_size / torch.clamp(update.square().mean().sqrt() / clip_threshold, min=1.0))
    if exp_avg is not None:
        exp_avg.mul_(beta1).add_(update * (1 - beta1))
        update = exp_avg
    param.copy_(param.to(hyper.dtype) * (1 - weight_decay * step_size) - update)


def _factored_write_rule(param: torch.Tensor, grad: torch.Tensor, row_factor: torch.Tensor, col_factor: torch.Tensor,
                         exp_avg: torch.Tensor | None, hyper: torch.Tensor) -> None:
    """The write of a matrix: ``theta <- theta * hyper[0] - u`` with ``u = g * r c^T`` formed on the fly
    (through ``exp_avg <- hyper[1] exp_avg + u`` with momentum). Step size, clipping and ``1 - beta1``
    arrive folded into ``row_factor``: scalar expressions in the loop body would be recomputed for
    every vector of elements (measured 2x slower)."""
    update = grad.to(hyper.dtype) * row_factor.unsqueeze(-1) * col_factor.unsqueeze(-2)
    if exp_avg is not None:
        exp_avg.mul_(hyper[1]).add_(update)
        update = exp_avg
    param.copy_(param.to(hyper.dtype) * hyper[0] - update)


def _unfactored_rule(param: torch.Tensor, grad: torch.Tensor, second: torch.Tensor, exp_avg: torch.Tensor | None,
                     hyper: torch.Tensor) -> None:
    """The whole step with a full second moment (1-D parameters); ``hyper`` as for :func:`_finish`."""
    beta2t, eps1 = hyper[2], hyper[3]
    g = grad.to(hyper.dtype)
    second.mul_(beta2t).add_((g * g + eps1) * (1 - beta2t))
    _finish(param, second.rsqrt() * g, exp_avg, param.to(hyper.dtype).square().mean(), hyper)


FACTORED_WRITE_KERNEL = FusedKernel(_factored_write_rule)
UNFACTORED_KERNEL = FusedKernel(_unfactored_rule, native=_native_rules.adafactor_unfactored)


def fused_adafactor_step(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any],
                         *, relative_size: float) -> bool:
    """One step of a contiguous ``param`` with its gradient ``grad`` in the compute dtype
    (``state["step"]`` already advanced); ``relative_size`` is the step size before the
    parameter-RMS scale (``lr``, or the relative-step schedule's value). ``False``: not handled (3 or
    more dimensions), take the eager path."""
    if param.dim() > 2:
        return False
    beta1 = group["beta1"]
    beta2t, eps1 = 1.0 - math.pow(state["step"], float(group["decay_rate"])), float(group["eps"][0])
    exp_avg = state.get("exp_avg")
    if param.dim() == 1:
        scalars = (relative_size, float(group["eps"][1]), beta2t, eps1, float(group["clip_threshold"]),
                   float(group["weight_decay"]), 0.0 if beta1 is None else float(beta1),
                   1.0 if group["scale_parameter"] else 0.0)
        tensors = (param, grad, state["exp_avg_sq"], exp_avg)
        UNFACTORED_KERNEL(*(None if t is None else alias(t) for t in tensors), scalars=scalars, owner="adafactor")
        return True
    dtype = scalar_dtype(param.dtype)
    rows, cols = param.shape
    row_sums, col_sums, param_square_sum = square_sums(grad, param if group["scale_parameter"] else None)
    row_factor, col_factor = update_statistics_from_means(
        state["exp_avg_sq_row"], state["exp_avg_sq_col"], row_sums.div_(cols), col_sums.div_(rows),
        beta2t=beta2t, eps1=eps1)
    # sum(u^2) of u = g * r c^T without forming u: sum_ij r_i^2 g_ij^2 c_j^2
    update_rms = (weighted_square_sum(grad, row_factor.square(), col_factor.square()) / grad.numel()).sqrt_()
    step_size: float | torch.Tensor = relative_size
    if group["scale_parameter"]:
        param_rms = (param_square_sum / param.numel()).sqrt_()
        step_size = param_rms.clamp_(min=float(group["eps"][1])).mul_(relative_size)
    row_factor.mul_(step_size / update_rms.div_(float(group["clip_threshold"])).clamp_(min=1.0))
    if beta1 is not None:
        row_factor.mul_(1.0 - beta1)
    decay = 1.0 - float(group["weight_decay"]) * step_size
    momentum = 0.0 if beta1 is None else float(beta1)
    if factored_write(param, grad, row_factor, col_factor, decay=decay, exp_avg=exp_avg, beta1=momentum):
        return True  # float32 on CPU: the C kernel
    coefficients: tuple[float, float] | torch.Tensor = (decay, momentum)
    if isinstance(decay, torch.Tensor):  # scale_parameter: the step size is a tensor, keep it on the device
        coefficients = torch.stack([decay, decay.new_tensor(momentum)]).to(dtype)
    FACTORED_WRITE_KERNEL(alias(param, rows, cols), alias(grad, rows, cols), alias(row_factor.to(dtype)),
                          alias(col_factor.to(dtype)), None if exp_avg is None else alias(exp_avg, rows, cols),
                          scalars=coefficients, owner="adafactor")
    return True
