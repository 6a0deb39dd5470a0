"""StableAdamW (Wortsman et al., "Stable and low-precision training for large-scale vision-language models",
arXiv:2304.13013)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums, whole_numel, whole_sum
from swift_optim_zoo._fused import FusedKernel, check_fused
from swift_zoo import DistributedCapability
from swift_zoo.optim import require_betas, require_non_negative, require_positive


def debiased_beta(beta: float, step: int) -> float:
    r""":math:`\hat\beta_t = \beta (1-\beta^{t-1}) / (1-\beta^t)`: an EMA with this rate is its own bias
    correction (the paper's Algorithm 2)."""
    return beta * (1 - beta ** (step - 1)) / (1 - beta**step)


def stable_adamw_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                      hyper: Any, *, sums: ShardSums | None = None, decay: bool = False) -> None:
    """One StableAdamW step; ``hyper`` = ``(lr, beta1_hat, beta2_hat, eps, weight_decay)``."""
    lr, beta1, beta2, eps, weight_decay = (hyper[i] for i in range(5))
    exp_avg.mul_(beta1).add_(grad * (1 - beta1))
    exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
    ratio = grad * grad / exp_avg_sq.clamp(min=eps * eps)
    ratio = ratio if ratio.dtype == torch.float64 else ratio.float()
    rms = (whole_sum(ratio, sums) / whole_numel(grad, sums)).sqrt().clamp(min=1.0)
    step_size = lr / rms
    if decay:
        param.mul_(1 - step_size * weight_decay)
    param.sub_(exp_avg / (exp_avg_sq.sqrt() + eps) * step_size)


STABLE_ADAMW_KERNEL = FusedKernel(stable_adamw_rule, native=_native_elementwise.STABLE_ADAMW)


class StableAdamW(ElementwiseOptimizer):
    r"""StableAdamW: AdamW whose step size is divided, per tensor, by the RMS of :math:`g^2/v` when it exceeds 1.

    .. math::
        \hat\beta_{i,t} = \beta_i\frac{1-\beta_i^{t-1}}{1-\beta_i^t},\quad
        m \leftarrow \hat\beta_{1,t} m + (1-\hat\beta_{1,t}) g,\quad
        v \leftarrow \hat\beta_{2,t} v + (1-\hat\beta_{2,t}) g^2,\\
        \eta_t = \eta / \max\Big(1, \sqrt{\mathrm{mean}\big(g^2/\max(v, \epsilon^2)\big)}\Big),\qquad
        \theta \leftarrow \theta(1 - \eta_t\lambda) - \eta_t\,\frac{m}{\sqrt{v} + \epsilon}

    (Algorithm 2 of arXiv:2304.13013: AdaFactor's update clipping in AdamW; the debiased betas make the moments
    their own bias corrections). The mean is over the whole tensor, also under FSDP2 (an all-reduce:
    within 1e-6 of one process, not bitwise).
    Matches pytorch_optimizer 4.1's ``StableAdamW`` (without its Kahan summation for bf16 parameters) and
    torch-optimi's. ``fused=True`` runs the rule as a C kernel for float32 CPU
    tensors (the moments and the RMS in one pass, the write in a second; :mod:`swift_optim_zoo._native_elementwise`)
    and compiles it elsewhere.

    Defaults (the paper's): ``lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01``. State: ``exp_avg``,
    ``exp_avg_sq`` (parameter dtype), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: stable_adamw
          optimizer_kwargs: {lr: 1.0e-3, betas: [0.9, 0.99], weight_decay: 0.1}
    """

    distributed: ClassVar[DistributedCapability] = TENSOR_SUMS
    whole_tensor_sums: ClassVar[bool] = True
    name = "stable_adamw"
    state_keys = ("exp_avg", "exp_avg_sq")
    kernel = STABLE_ADAMW_KERNEL

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8,
                 weight_decay: float = 0.01, fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas),
            "eps": require_positive(owner, "eps", eps),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay), "fused": fused,
        }
        super().__init__(params, defaults)

    def _hyper(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[float, ...]:
        beta1, beta2 = group["betas"]
        step = state["step"]
        return (group["lr"], debiased_beta(beta1, step), debiased_beta(beta2, step), group["eps"],
                group["weight_decay"])

    def _flags(self, group: Mapping[str, Any], param: torch.Tensor) -> dict[str, bool]:
        return {"decay": group["weight_decay"] != 0}
