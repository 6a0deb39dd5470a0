r"""Adafactor on FSDP2 row shards: the factored statistics from all-reduced partial sums.

Adafactor needs a matrix only through sums: per row and per column of :math:`g^2`, the mean of the row
statistic, and the RMS of the update (and of the parameter, with ``scale_parameter``). For an ``m x n``
matrix split by rows, each row's sums are local; the column sums, the row-statistic total and the two
sums of squares are sums over the ranks' rows, so an all-reduce of the ranks' partial sums gives them whole
-- the same statistics as one process, added in another order (agreement to float32 rounding, ~1e-7),
with ``n + 3`` words per matrix all-reduced per step instead of the ``2 m n`` an owner rank would need to
receive the gradient and send the update back. Three all-reduces per step for all parameters together:

1. column sums of :math:`g^2` (2-D matrices) and the parameters' sums of squares;
2. the sum of the updated row statistic :math:`R` (2-D matrices), for :math:`\mathrm{mean}(R)`;
3. each update's sum of squares, for the RMS clip.

State: the row statistic (``m``, or ``shape[:-1]``) is a ``Shard(0)`` DTensor like the parameter; the column
statistic of a 2-D matrix (``n``) is the same on every rank (a plain tensor); tensors of three or more
dimensions (expert stacks, sharded over their first dimension) keep both statistics per slice, sharded;
1-D tensors keep a sharded full second moment. ``exp_avg`` (with ``beta1``) is sharded like the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from swift_optim_zoo.adafactor._rule import update_factored_statistics
from swift_zoo.optim import local_tensor, sharded_zeros, sum_over_shards


def init_sharded_state(state: dict[str, Any], param: torch.Tensor, *, dtype: torch.dtype,
                       use_first_moment: bool) -> None:
    """:func:`~swift_optim_zoo.adafactor._rule.init_adafactor_state` for a row-sharded ``param``."""
    shape = tuple(param.shape)
    if len(shape) >= 2:
        state["exp_avg_sq_row"] = sharded_zeros(param, shape[:-1], dtype)
        col_shape = shape[:-2] + shape[-1:]
        if len(shape) == 2:
            state["exp_avg_sq_col"] = torch.zeros(col_shape, dtype=dtype, device=local_tensor(param).device)
        else:
            state["exp_avg_sq_col"] = sharded_zeros(param, col_shape, dtype)
    else:
        state["exp_avg_sq"] = sharded_zeros(param, shape, dtype)
    if use_first_moment:
        state["exp_avg"] = sharded_zeros(param, shape, dtype)


def sharded_adafactor_step(optimizer: torch.optim.Optimizer, items: list[tuple[torch.Tensor, dict[str, Any]]],
                           step_size: Callable[[Mapping[str, Any], int, float], float],
                           compute_dtype: Callable[[torch.Tensor], torch.dtype]) -> None:
    """One Adafactor step of the row-sharded ``(param, group)`` ``items`` (``state["step"]`` not yet advanced);
    ``step_size(group, step, param_rms)`` is :meth:`Adafactor._step_size`."""
    params = [param for param, _ in items]
    grads, states = [], []
    for param, group in items:
        dtype = compute_dtype(param)
        grads.append(local_tensor(param.grad).to(dtype))
        state = optimizer.state[param]
        if "step" not in state:
            state["step"] = 0
            init_sharded_state(state, param, dtype=dtype, use_first_moment=group["beta1"] is not None)
        state["step"] += 1
        states.append(state)
    squares = [grad * grad for grad in grads]
    matrices = [i for i, param in enumerate(params) if param.dim() == 2]

    # 1. column sums of g^2 (2-D) and the parameters' sums of squares
    partial = [squares[i].sum(dim=0) for i in matrices]
    partial += [local_tensor(p).to(g.dtype).square().sum().reshape(1) for p, g in zip(params, grads)]
    summed = sum_over_shards([params[i] for i in matrices] + params, partial)
    col_sums, param_squares = summed[:len(matrices)], summed[len(matrices):]

    # 2. statistics; for 2-D, the total of the updated row statistic
    beta2ts = [1.0 - math.pow(state["step"], float(group["decay_rate"])) for state, (_, group) in zip(states, items)]
    factors: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for k, i in enumerate(matrices):
        state, (param, group) = states[i], items[i]
        eps1, beta2t = float(group["eps"][0]), beta2ts[i]
        row, col = local_tensor(state["exp_avg_sq_row"]), state["exp_avg_sq_col"]
        row.mul_(beta2t).add_(squares[i].mean(dim=-1).add_(eps1), alpha=1.0 - beta2t)
        col.mul_(beta2t).add_(col_sums[k].div_(param.shape[0]).add_(eps1), alpha=1.0 - beta2t)
    row_totals = sum_over_shards([params[i] for i in matrices],
                                 [local_tensor(states[i]["exp_avg_sq_row"]).sum().reshape(1) for i in matrices])
    for k, i in enumerate(matrices):
        row_mean = row_totals[k] / params[i].shape[0]
        factors[i] = ((local_tensor(states[i]["exp_avg_sq_row"]) / row_mean).rsqrt_(), states[i]["exp_avg_sq_col"].rsqrt())

    # 3. the updates and their sums of squares
    updates = []
    for i, (param, group) in enumerate(items):
        state, grad, eps1, beta2t = states[i], grads[i], float(group["eps"][0]), beta2ts[i]
        if i in factors:
            row_factor, col_factor = factors[i]
            update = grad * row_factor.unsqueeze(-1)
            update.mul_(col_factor.unsqueeze(-2))
        elif param.dim() > 2:  # sharded over whole slices: the statistics are local
            row_factor, col_factor = update_factored_statistics(
                grad, local_tensor(state["exp_avg_sq_row"]), local_tensor(state["exp_avg_sq_col"]),
                beta2t=beta2t, eps1=eps1)
            update = grad * row_factor.unsqueeze(-1)
            update.mul_(col_factor.unsqueeze(-2))
        else:
            second = local_tensor(state["exp_avg_sq"])
            second.mul_(beta2t).addcmul_(grad, grad, value=1.0 - beta2t).add_(eps1 * (1.0 - beta2t))
            update = second.rsqrt() * grad
        updates.append(update)
    update_squares = sum_over_shards(params, [u.square().sum().reshape(1) for u in updates])

    # the write, on the local rows
    for i, (param, group) in enumerate(items):
        state, update = states[i], updates[i]
        numel = param.numel()
        param_rms = float((param_squares[i] / numel).sqrt()) if group["scale_parameter"] else 0.0
        size = step_size(group, state["step"], param_rms)
        update_rms = (update_squares[i] / numel).sqrt()
        update.mul_(size / (update_rms / float(group["clip_threshold"])).clamp(min=1.0))
        if group["beta1"] is not None:
            first = local_tensor(state["exp_avg"])
            first.mul_(group["beta1"]).add_(update, alpha=1.0 - group["beta1"])
            update = first.clone()
        local = local_tensor(param)
        work = local if local.dtype == update.dtype else local.detach().to(update.dtype)
        if group["weight_decay"]:
            work.mul_(1.0 - group["weight_decay"] * size)
        work.sub_(update)
        if work is not local:
            local.copy_(work)
