"""Adan (Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models",
arXiv:2208.06677)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums
from swift_optim_zoo._fused import FusedKernel, check_fused
from swift_zoo.optim import require_betas, require_bool, require_non_negative, require_positive


def adan_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_diff: torch.Tensor,
              exp_avg_sq: torch.Tensor, previous_grad: torch.Tensor, hyper: Any, *, sums: ShardSums | None = None,
              decoupled: bool = False, decay: bool = False) -> None:
    """One Adan step; ``hyper`` = ``(lr, beta1, beta2, beta3, eps, weight_decay, bc1, bc2, sqrt_bc3)``."""
    lr, beta1, beta2, beta3, eps, weight_decay, bc1, bc2, sqrt_bc3 = (hyper[i] for i in range(9))
    diff = grad - previous_grad
    exp_avg.mul_(beta1).add_(grad * (1 - beta1))
    exp_avg_diff.mul_(beta2).add_(diff * (1 - beta2))
    nesterov = grad + diff * beta2
    exp_avg_sq.mul_(beta3).add_(nesterov * nesterov * (1 - beta3))
    update = (exp_avg / bc1 + exp_avg_diff * (beta2 / bc2)) / (exp_avg_sq.sqrt() / sqrt_bc3 + eps)
    if decay and decoupled:
        param.mul_(1 - lr * weight_decay)
    param.sub_(update * lr)
    if decay and not decoupled:
        param.div_(1 + lr * weight_decay)
    previous_grad.copy_(grad)


ADAN_KERNEL = FusedKernel(adan_rule, native=_native_elementwise.ADAN)


class Adan(ElementwiseOptimizer):
    r"""Adan: Adam-like moments of the gradient and of its difference (a Nesterov estimate), with a proximal decay.

    .. math::
        d = g_t - g_{t-1}\ (g_0 = g_1),\quad m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        n \leftarrow \beta_2 n + (1-\beta_2) d,\quad v \leftarrow \beta_3 v + (1-\beta_3)(g + \beta_2 d)^2,\\
        u = \frac{m/(1-\beta_1^t) + \beta_2\, n/(1-\beta_2^t)}{\sqrt{v/(1-\beta_3^t)} + \epsilon},\qquad
        \theta \leftarrow \frac{\theta - \eta u}{1 + \eta\lambda}

    (Algorithm 1 of arXiv:2208.06677 with the bias corrections of the official code; the betas are the decay
    rates, i.e. the paper's :math:`1-\beta`). ``decoupled_weight_decay=True`` decays as AdamW,
    :math:`\theta(1-\eta\lambda) - \eta u`, instead of the proximal step (the official ``no_prox``).
    ``fused=True`` runs the per-tensor rule as one C kernel pass for float32 CPU tensors
    (:mod:`swift_optim_zoo._native_elementwise`) and compiles it elsewhere.

    Defaults (the official code's): ``lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0``.
    State: ``exp_avg``, ``exp_avg_diff``, ``exp_avg_sq``, ``previous_grad`` (parameter dtype), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: adan
          optimizer_kwargs: {lr: 1.0e-3, betas: [0.98, 0.92, 0.99], weight_decay: 0.02}
    """

    name = "adan"
    state_keys = ("exp_avg", "exp_avg_diff", "exp_avg_sq", "previous_grad")
    kernel = ADAN_KERNEL

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
                 fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas, count=3),
            "eps": require_positive(owner, "eps", eps),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "decoupled_weight_decay": require_bool(owner, "decoupled_weight_decay", decoupled_weight_decay),
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._new_state(param, group)
        state["previous_grad"].copy_(param.grad)  # the first difference is zero
        return state

    def _hyper(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[float, ...]:
        step = state["step"]
        beta1, beta2, beta3 = group["betas"]
        return (group["lr"], beta1, beta2, beta3, group["eps"], group["weight_decay"], 1 - beta1**step,
                1 - beta2**step, math.sqrt(1 - beta3**step))

    def _flags(self, group: Mapping[str, Any], param: torch.Tensor) -> dict[str, bool]:
        return {"decoupled": group["decoupled_weight_decay"], "decay": group["weight_decay"] != 0}
