"""MARS (Yuan et al., "MARS: Unleashing the Power of Variance Reduction for Training Large Models",
arXiv:2411.10438), the AdamW instance."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums, cautious_mask, run_rule, whole_sum
from swift_optim_zoo._fused import FusedKernel, check_fused
from swift_zoo import DistributedCapability
from swift_zoo.optim import require_betas, require_bool, require_non_negative, require_positive


def mars_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
              last_grad: torch.Tensor, hyper: Any, *, sums: ShardSums | None = None, corrected: bool = True,
              cautious: bool = False, decay: bool = False) -> None:
    """One MARS-AdamW step; ``hyper`` = ``(lr, beta1, beta2, gamma, eps, weight_decay, bc1, sqrt_bc2)``.
    ``corrected=False`` is the plain AdamW MARS applies to 1-D tensors (same eps placement)."""
    lr, beta1, beta2, gamma, eps, weight_decay, bc1, sqrt_bc2 = (hyper[i] for i in range(8))
    if corrected:
        c = grad + (grad - last_grad) * (gamma * beta1 / (1 - beta1))
        norm = whole_sum(c * c, sums).sqrt()
        c = c / norm.clamp(min=1.0)
        last_grad.copy_(grad)
    else:
        c = grad
    exp_avg.mul_(beta1).add_(c * (1 - beta1))
    exp_avg_sq.mul_(beta2).add_(c * c * (1 - beta2))
    update = exp_avg / ((exp_avg_sq.sqrt() + eps) * (bc1 / sqrt_bc2))
    if cautious:
        update = update * cautious_mask(update, grad, sums)
    if decay:
        param.mul_(1 - lr * weight_decay)
    param.sub_(update * lr)


MARS_KERNEL = FusedKernel(mars_rule, native=_native_elementwise.MARS)


class MARS(ElementwiseOptimizer):
    r"""MARS-AdamW: AdamW on a variance-reduced gradient :math:`c_t`, for matrices.

    .. math::
        c = g_t + \gamma\frac{\beta_1}{1-\beta_1}(g_t - g_{t-1}),\quad
        c \leftarrow c / \max(1, \lVert c\rVert_2),\\
        m \leftarrow \beta_1 m + (1-\beta_1) c,\quad v \leftarrow \beta_2 v + (1-\beta_2) c^2,\quad
        \theta \leftarrow \theta(1-\eta\lambda) - \eta\,\frac{m/(1-\beta_1^t)}{(\sqrt{v}+\epsilon)/\sqrt{1-\beta_2^t}}

    (Algorithm 2 of arXiv:2411.10438, the approximate form that reuses the previous step's gradient;
    :math:`g_0 = 0`). As the paper's code, tensors of fewer than 2 dimensions take plain AdamW (:math:`c = g`)
    with ``betas_1d`` unless ``optimize_1d=True``; here they keep the group's lr and weight decay (the zoo's
    role-based groups already exclude norms and biases from decay). The norm of :math:`c` is the whole tensor's,
    also under FSDP2 (an all-reduce: within 1e-6 of one process, not bitwise). ``cautious=True`` masks the update where its sign disagrees with :math:`g`
    (arXiv:2411.16085). ``fused=True`` runs the per-tensor rule as a C kernel for float32 CPU tensors (the norm's pass, then the
    moments and the write; :mod:`swift_optim_zoo._native_elementwise`) and compiles it elsewhere.

    Defaults (the paper's code and pytorch_optimizer 4.1): ``lr=3e-3, betas=(0.95, 0.99), gamma=0.025, eps=1e-8,
    weight_decay=0, betas_1d=(0.9, 0.95)``. State: ``exp_avg``, ``exp_avg_sq``, ``last_grad`` (parameter dtype),
    ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: mars
          optimizer_kwargs: {lr: 3.0e-3, gamma: 0.025, weight_decay: 0.1}
    """

    distributed: ClassVar[DistributedCapability] = TENSOR_SUMS
    whole_tensor_sums: ClassVar[bool] = True
    name = "mars"
    state_keys = ("exp_avg", "exp_avg_sq", "last_grad")
    kernel = MARS_KERNEL

    def __init__(self, params: Any, lr: float = 3e-3, betas: tuple[float, float] = (0.95, 0.99),
                 gamma: float = 0.025, eps: float = 1e-8, weight_decay: float = 0.0,
                 betas_1d: tuple[float, float] = (0.9, 0.95), optimize_1d: bool = False, cautious: bool = False,
                 fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas),
            "gamma": require_non_negative(owner, "gamma", gamma), "eps": require_positive(owner, "eps", eps),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "betas_1d": require_betas(owner, "betas_1d", betas_1d),
            "optimize_1d": require_bool(owner, "optimize_1d", optimize_1d),
            "cautious": require_bool(owner, "cautious", cautious), "fused": fused,
        }
        super().__init__(params, defaults)

    def _corrected(self, group: Mapping[str, Any], param: torch.Tensor) -> bool:
        return group["optimize_1d"] or param.dim() >= 2

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._new_state(param, group)
        if not self._corrected(group, param):
            state["last_grad"] = torch.zeros((), dtype=param.dtype, device=param.device)  # unused by plain AdamW
        return state

    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """Three parameter-sized tensors for MARS tensors, two (and an empty slot) for the plain-AdamW ones."""
        words = 3 if self._corrected(group, param) else 2
        return words * param.numel() * param.element_size() + (0 if words == 3 else param.element_size())

    def _hyper(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[float, ...]:
        return self._scalars(group, state["step"], group["betas"])

    def _scalars(self, group: Mapping[str, Any], step: int, betas: tuple[float, float]) -> tuple[float, ...]:
        beta1, beta2 = betas
        return (group["lr"], beta1, beta2, group["gamma"], group["eps"], group["weight_decay"], 1 - beta1**step,
                math.sqrt(1 - beta2**step))

    def _flags(self, group: Mapping[str, Any], param: torch.Tensor) -> dict[str, bool]:
        return {"corrected": self._corrected(group, param), "cautious": group["cautious"],
                "decay": group["weight_decay"] != 0}

    def _apply(self, param: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        if self._corrected(group, param):
            super()._apply(param, state, group)
            return
        # plain AdamW with betas_1d: the rule never reads last_grad (a 0-d placeholder), exp_avg stands in for it
        tensors = [param, param.grad, state["exp_avg"], state["exp_avg_sq"], state["exp_avg"]]
        run_rule(self.kernel, tensors, self._scalars(group, state["step"], group["betas_1d"]),
                 self._flags(group, param), fused=bool(group.get("fused", False)), owner=self._tag)
