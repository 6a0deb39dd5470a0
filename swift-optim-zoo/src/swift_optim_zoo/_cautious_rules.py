"""The cautious steps of ``adamw`` and ``lion`` (``cautious=True``): their rules with the update masked where its
sign disagrees with the gradient, rescaled as in arXiv:2411.16085 (:func:`~swift_optim_zoo._elementwise.cautious_mask`).

The plain optimizers keep their own fast paths (torch's fused AdamW, Lion's foreach/fused loops); these rules run
through the element-wise frame instead (eagerly; with ``fused=True`` as a C kernel for float32 CPU tensors, a count pass
and a write pass, compiled elsewhere; or on FSDP2 shards with
whole-tensor counts), keeping the same state keys, so a checkpoint moves between ``cautious`` on and off.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._elementwise import ShardSums, cautious_mask, run_rule
from swift_optim_zoo._fused import FusedKernel


def cautious_adamw_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                        hyper: Any, *, sums: ShardSums | None = None) -> None:
    """C-AdamW on one tensor; ``hyper`` = ``(lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2)``."""
    lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2 = (hyper[i] for i in range(7))
    param.mul_(1 - lr * weight_decay)
    exp_avg.mul_(beta1).add_(grad * (1 - beta1))
    exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
    update = (exp_avg / bc1) / (exp_avg_sq.sqrt() / sqrt_bc2 + eps)
    param.sub_(update * cautious_mask(update, grad, sums) * lr)


def cautious_lion_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, hyper: Any, *,
                       sums: ShardSums | None = None) -> None:
    """C-Lion on one tensor; ``hyper`` = ``(lr, beta1, beta2, weight_decay)``."""
    lr, beta1, beta2, weight_decay = (hyper[i] for i in range(4))
    param.mul_(1 - lr * weight_decay)
    update = torch.sign(exp_avg * beta1 + grad * (1 - beta1))
    param.sub_(update * cautious_mask(update, grad, sums) * lr)
    exp_avg.mul_(beta2).add_(grad * (1 - beta2))


CAUTIOUS_ADAMW_KERNEL = FusedKernel(cautious_adamw_rule, native=_native_elementwise.CAUTIOUS_ADAMW)
CAUTIOUS_LION_KERNEL = FusedKernel(cautious_lion_rule, native=_native_elementwise.CAUTIOUS_LION)


def cautious_adamw_step(optimizer: torch.optim.Optimizer) -> None:
    """Every group of an ``adamw`` optimizer, with torch AdamW's state layout (``step`` a float32 0-d tensor)."""
    for group in optimizer.param_groups:
        beta1, beta2 = group["betas"]
        for param in group["params"]:
            if param.grad is None:
                continue
            state = optimizer.state[param]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["step"] += 1
            step = float(state["step"])
            hyper = (group["lr"], beta1, beta2, group["eps"], group["weight_decay"], 1 - beta1**step,
                     math.sqrt(1 - beta2**step))
            run_rule(CAUTIOUS_ADAMW_KERNEL, [param, param.grad, state["exp_avg"], state["exp_avg_sq"]], hyper, {},
                     fused=bool(group.get("fused")), owner="adamw")


def cautious_lion_step(optimizer: torch.optim.Optimizer) -> None:
    """Every group of a ``lion`` optimizer (state ``exp_avg``)."""
    for group in optimizer.param_groups:
        beta1, beta2 = group["betas"]
        for param in group["params"]:
            if param.grad is None:
                continue
            state = optimizer.state[param]
            if "exp_avg" not in state:
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            hyper = (group["lr"], beta1, beta2, group["weight_decay"])
            run_rule(CAUTIOUS_LION_KERNEL, [param, param.grad, state["exp_avg"]], hyper, {},
                     fused=bool(group.get("fused")), owner="lion")
