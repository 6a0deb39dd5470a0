r"""CAME on FSDP2 row shards: its factored statistics from all-reduced partial sums.

CAME (:func:`~swift_optim_zoo.came._rule.came_update`) needs a matrix only through sums: per row and per column of
:math:`g^2 + \epsilon_1` and of the confidence residual :math:`(u - m)^2 + \epsilon_2`, the mean of each row
statistic, and the update's RMS. For an ``m x n`` matrix split by rows each row's sums are local; the column sums
and the row statistics' totals are sums over the ranks' rows, so an all-reduce of the partial sums gives them
whole -- one process's statistics added in another order (agreement to float rounding) -- with ``n + 1`` words per
matrix per statistic instead of the ``2 m n`` an owner rank would receive and send back. Three all-reduces per step
for all parameters together:

1. column sums of :math:`g^2 + \epsilon_1` and the updated row statistic's total (2-D matrices);
2. each update's sum of squares (every tensor), for the RMS clip;
3. column sums of the residual and the updated residual row statistic's total (2-D matrices).

State: ``exp_avg``, the row statistics (``m``) and, for vectors, ``exp_avg_sq`` are ``Shard(0)`` DTensors like the
parameter; the column statistics of a 2-D matrix (``n``) are the same on every rank (plain tensors); tensors of
three or more dimensions, sharded over their first dimension, keep both statistics per slice, sharded, and need
only the RMS's all-reduce.
"""

from __future__ import annotations

from typing import Any

import torch

from swift_optim_zoo.came._rule import factored_rsqrt
from swift_zoo.optim import local_tensor, sharded_zeros, sum_over_shards


def init_sharded_state(param: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """CAME's state for a row-sharded ``param`` (see the module docstring for the layout)."""
    shape = tuple(param.shape)
    state = {"exp_avg": sharded_zeros(param, shape, dtype)}
    if len(shape) < 2:
        state["exp_avg_sq"] = sharded_zeros(param, shape, dtype)
        return state
    for name in ("exp_avg_sq", "exp_avg_res"):
        state[f"{name}_row"] = sharded_zeros(param, shape[:-1], dtype)
        col_shape = shape[:-2] + shape[-1:]
        state[f"{name}_col"] = (torch.zeros(col_shape, dtype=dtype, device=local_tensor(param).device)
                                if len(shape) == 2 else sharded_zeros(param, col_shape, dtype))
    return state


def _ema(tensor: torch.Tensor, value: torch.Tensor, beta: float) -> None:
    tensor.mul_(beta).add_(value, alpha=1 - beta)


def _factored_statistics(params: list[torch.Tensor], states: list[dict[str, Any]],
                         values: list[torch.Tensor | None], name: str, betas: list[float]) -> list[torch.Tensor | None]:
    """Update the row and column statistics ``<name>_row`` / ``<name>_col`` (EMA rates ``betas``) from the local
    rows of ``values`` (``None`` for a vector) and return the factored rsqrt of each (``None`` for vectors). One
    all-reduce for the 2-D matrices' column sums and row totals."""
    for state, value, beta in zip(states, values, betas):
        if value is not None:
            _ema(local_tensor(state[f"{name}_row"]), value.mean(dim=-1), beta)
    matrices = [i for i, param in enumerate(params) if param.dim() == 2]
    partial = [torch.cat([values[i].sum(dim=0), local_tensor(states[i][f"{name}_row"]).sum().reshape(1)])
               for i in matrices]
    summed = dict(zip(matrices, sum_over_shards([params[i] for i in matrices], partial)))
    factors: list[torch.Tensor | None] = []
    for i, (param, state, value, beta) in enumerate(zip(params, states, values, betas)):
        if value is None:
            factors.append(None)
            continue
        row, col = local_tensor(state[f"{name}_row"]), local_tensor(state[f"{name}_col"])
        if i in summed:  # 2-D: columns and the row total summed over the ranks
            rows = param.shape[0]
            _ema(col, summed[i][:-1] / rows, beta)
            factors.append(factored_rsqrt(row, col, row_mean=summed[i][-1:] / rows))
        else:  # 3-D or more: whole slices on this rank
            _ema(col, value.mean(dim=-2), beta)
            factors.append(factored_rsqrt(row, col))
    return factors


def sharded_came_step(optimizer: Any, items: list[tuple[torch.Tensor, dict[str, Any]]]) -> None:
    """One CAME step of the row-sharded ``(param, group)`` ``items`` (``state["step"]`` already counted)."""
    params = [param for param, _ in items]
    states = [optimizer.state[param] for param in params]
    grads = []
    for param in params:
        grad = local_tensor(param.grad)
        grads.append(grad.float() if grad.dtype in (torch.bfloat16, torch.float16) else grad)
    squared = [grad * grad + group["eps"][0] for grad, (_, group) in zip(grads, items)]

    # 1. the second moment: factored (2-D and more), element-wise (vectors)
    beta2s = [group["betas"][1] for _, group in items]
    factors = _factored_statistics(params, states, [s if p.dim() >= 2 else None for p, s in zip(params, squared)],
                                   "exp_avg_sq", beta2s)
    updates = []
    for state, grad, value, factor, beta2 in zip(states, grads, squared, factors, beta2s):
        if factor is None:
            second = local_tensor(state["exp_avg_sq"])
            _ema(second, value, beta2)
            updates.append(second.rsqrt().mul_(grad))
        else:
            updates.append(factor.mul_(grad))

    # 2. the RMS clip
    totals = sum_over_shards(params, [update.square().sum().reshape(1) for update in updates])
    residuals = []
    for param, state, update, total, (_, group) in zip(params, states, updates, totals, items):
        beta1 = group["betas"][0]
        update.div_(((total / param.numel()).sqrt() / group["clip_threshold"]).clamp(min=1.0))
        exp_avg = local_tensor(state["exp_avg"])
        _ema(exp_avg, update, beta1)
        residuals.append((update - exp_avg).square_().add_(group["eps"][1]) if param.dim() >= 2 else None)

    # 3. the confidence: factored (2-D and more); vectors step with the momentum itself
    confidences = _factored_statistics(params, states, residuals, "exp_avg_res", [g["betas"][2] for _, g in items])
    for param, state, confidence, (_, group) in zip(params, states, confidences, items):
        exp_avg = local_tensor(state["exp_avg"])
        update = exp_avg if confidence is None else confidence.mul_(exp_avg)
        local = local_tensor(param)
        if group["weight_decay"] != 0:
            local.mul_(1 - group["lr"] * group["weight_decay"])
        local.sub_(update.to(local.dtype), alpha=group["lr"])
