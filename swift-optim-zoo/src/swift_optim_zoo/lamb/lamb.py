"""LAMB (You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", arXiv:1904.00962)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums, cautious_mask, whole_sum
from swift_optim_zoo._fused import FusedKernel, check_fused
from swift_zoo import DistributedCapability
from swift_zoo.optim import require_betas, require_bool, require_non_negative, require_positive


def lamb_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
              hyper: Any, *, sums: ShardSums | None = None, cautious: bool = False) -> None:
    """One LAMB step; ``hyper`` = ``(lr, beta1, beta2, eps, weight_decay, bc1, bc2, max_weight_norm)``."""
    lr, beta1, beta2, eps, weight_decay, bc1, bc2, max_norm = (hyper[i] for i in range(8))
    exp_avg.mul_(beta1).add_(grad * (1 - beta1))
    exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
    update = (exp_avg / bc1) / ((exp_avg_sq / bc2).sqrt() + eps)
    if cautious:
        update = update * cautious_mask(update, grad, sums)
    update = update + param * weight_decay
    weight_norm = whole_sum(param * param, sums).sqrt().clamp(max=max_norm)
    update_norm = whole_sum(update * update, sums).sqrt()
    ratio = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm, 1.0)
    param.sub_(update * (ratio * lr))


LAMB_KERNEL = FusedKernel(lamb_rule, native=_native_elementwise.LAMB)


class LAMB(ElementwiseOptimizer):
    r"""LAMB: the Adam direction plus weight decay, rescaled per tensor by the trust ratio
    :math:`\phi(\lVert\theta\rVert)/\lVert u\rVert`.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        u = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda\theta,\\
        \theta \leftarrow \theta - \eta\,\frac{\phi(\lVert\theta\rVert_2)}{\lVert u\rVert_2}\,u,\qquad
        \phi(x) = \min(x, \texttt{max\_weight\_norm})

    (Algorithm 2 of arXiv:1904.00962, bias-corrected moments; the ratio is 1 where either norm is 0). The norms are
    the whole tensor's, also under FSDP2 (an all-reduce of the partial sums of squares, added in another order
    than one process adds them: within 1e-6, not bitwise). References differ:
    pytorch_optimizer 4.1 leaves :math:`v` uncorrected and divides the step by :math:`1-\beta_1^t` *outside* the
    ratio (an lr that is :math:`1/(1-\beta_1^t)` larger early on); timm corrects both as here but does not clamp
    :math:`\lVert\theta\rVert`. This class follows the paper, with the clamp at 10 of the original implementation
    and pytorch_optimizer. ``cautious=True`` masks the Adam direction where its sign disagrees with :math:`g`
    (arXiv:2411.16085) before the trust ratio. ``fused=True`` runs the rule as a C kernel for float32 CPU tensors
    (the moments and both norms in one pass, the write in a second; :mod:`swift_optim_zoo._native_elementwise`) and
    compiles it elsewhere.

    Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0, max_weight_norm=10``. State: ``exp_avg``,
    ``exp_avg_sq`` (parameter dtype), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: lamb
          optimizer_kwargs: {lr: 2.0e-3, weight_decay: 0.01}
    """

    distributed: ClassVar[DistributedCapability] = TENSOR_SUMS
    whole_tensor_sums: ClassVar[bool] = True
    name = "lamb"
    state_keys = ("exp_avg", "exp_avg_sq")
    kernel = LAMB_KERNEL

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, max_weight_norm: float = 10.0, cautious: bool = False,
                 fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas),
            "eps": require_positive(owner, "eps", eps),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "max_weight_norm": require_positive(owner, "max_weight_norm", max_weight_norm),
            "cautious": require_bool(owner, "cautious", cautious), "fused": fused,
        }
        super().__init__(params, defaults)

    def _hyper(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[float, ...]:
        step = state["step"]
        beta1, beta2 = group["betas"]
        return (group["lr"], beta1, beta2, group["eps"], group["weight_decay"], 1 - beta1**step, 1 - beta2**step,
                group["max_weight_norm"])

    def _flags(self, group: Mapping[str, Any], param: torch.Tensor) -> dict[str, bool]:
        return {"cautious": group["cautious"]}
