"""AdEMAMix (Pagliardini et al., "The AdEMAMix Optimizer: Better, Faster, Older", arXiv:2409.03137)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums, cautious_mask
from swift_optim_zoo._fused import FusedKernel, check_fused
from swift_zoo import ConfigError
from swift_zoo.optim import require_betas, require_bool, require_int, require_non_negative, require_positive


def ademamix_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_slow: torch.Tensor,
                  exp_avg_sq: torch.Tensor, hyper: Any, *, sums: ShardSums | None = None, cautious: bool = False,
                  decay: bool = False) -> None:
    """One AdEMAMix step; ``hyper`` = ``(lr, beta1, beta2, beta3_t, alpha_t, eps, weight_decay, bc1, sqrt_bc2)``."""
    lr, beta1, beta2, beta3, alpha, eps, weight_decay, bc1, sqrt_bc2 = (hyper[i] for i in range(9))
    exp_avg.mul_(beta1).add_(grad * (1 - beta1))
    exp_avg_slow.mul_(beta3).add_(grad * (1 - beta3))
    exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
    update = (exp_avg / bc1 + exp_avg_slow * alpha) / (exp_avg_sq.sqrt() / sqrt_bc2 + eps)
    if cautious:
        update = update * cautious_mask(update, grad, sums)
    if decay:
        param.mul_(1 - lr * weight_decay)
    param.sub_(update * lr)


ADEMAMIX_KERNEL = FusedKernel(ademamix_rule, native=_native_elementwise.ADEMAMIX)


def beta3_schedule(step: int, beta1: float, beta3: float, warmup: int | None) -> float:
    """The paper's beta3 warmup (its eq. for ``f_beta3``): the half-life grows linearly from beta1's to beta3's."""
    if not warmup or step >= warmup:
        return beta3
    log1, log3 = math.log(beta1), math.log(beta3)
    frac = step / warmup
    return min(math.exp(log1 * log3 / ((1 - frac) * log3 + frac * log1)), beta3)


class AdEMAMix(ElementwiseOptimizer):
    r"""AdEMAMix: Adam plus a slow EMA of gradients mixed into the numerator.

    .. math::
        m_1 \leftarrow \beta_1 m_1 + (1-\beta_1) g,\quad m_2 \leftarrow \beta_3 m_2 + (1-\beta_3) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\\
        \theta \leftarrow \theta - \eta\Big(\frac{m_1/(1-\beta_1^t) + \alpha\, m_2}{\sqrt{v/(1-\beta_2^t)} + \epsilon}
                                      + \lambda\theta\Big)

    (Algorithm 1 of arXiv:2409.03137: decoupled weight decay, no bias correction on :math:`m_2`). With
    ``warmup_steps`` (the paper's :math:`T_{\alpha,\beta_3}`), :math:`\alpha` grows linearly from 0 and
    :math:`\beta_3` by the paper's half-life schedule from :math:`\beta_1` to its value, over that many steps.
    ``cautious=True`` masks the update where its sign disagrees with :math:`g` (rescaled, arXiv:2411.16085; the
    whole update, as heavyball's ``caution``; pytorch_optimizer masks only :math:`m_1`); its count of kept elements
    is a whole-tensor sum, so ZeRO / FSDP1 flat partitions, which would cut it, are refused with it (FSDP2
    all-reduces it exactly: with ``fused=False``, bitwise one process's). ``fused=True`` runs
    the per-tensor rule as a C kernel for float32 CPU tensors (one pass; two with the mask:
    :mod:`swift_optim_zoo._native_elementwise`) and compiles it elsewhere.

    Defaults (the paper's): ``lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5, eps=1e-8, weight_decay=0,
    warmup_steps=None``. State: ``exp_avg``, ``exp_avg_slow``, ``exp_avg_sq`` (parameter dtype), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: ademamix
          optimizer_kwargs: {lr: 1.0e-3, alpha: 5.0, warmup_steps: 10000, weight_decay: 0.1}
    """

    name = "ademamix"
    state_keys = ("exp_avg", "exp_avg_slow", "exp_avg_sq")
    kernel = ADEMAMIX_KERNEL

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
                 alpha: float = 5.0, eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int | None = None,
                 cautious: bool = False, fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas, count=3),
            "alpha": require_non_negative(owner, "alpha", alpha), "eps": require_positive(owner, "eps", eps),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "warmup_steps": None if warmup_steps is None else require_int(owner, "warmup_steps", warmup_steps,
                                                                         low=0, high=10**9),
            "cautious": require_bool(owner, "cautious", cautious), "fused": fused,
        }
        if defaults["betas"][0] == 0 and warmup_steps:
            message = f"{owner}: betas[0] must be > 0 with warmup_steps (the beta3 schedule starts at beta1), got 0"
            raise ConfigError(message, key="betas", expected="betas[0] > 0", found=0)
        super().__init__(params, defaults)

    def _hyper(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[float, ...]:
        step, warmup = state["step"], group["warmup_steps"]
        beta1, beta2, beta3 = group["betas"]
        alpha = group["alpha"] * min(step / warmup, 1.0) if warmup else group["alpha"]
        return (group["lr"], beta1, beta2, beta3_schedule(step, beta1, beta3, warmup), alpha, group["eps"],
                group["weight_decay"], 1 - beta1**step, math.sqrt(1 - beta2**step))

    def _flags(self, group: Mapping[str, Any], param: torch.Tensor) -> dict[str, bool]:
        return {"cautious": group["cautious"], "decay": group["weight_decay"] != 0}
