"""SGD with momentum (Polyak; Nesterov as in Sutskever et al. 2013) and decoupled weight decay
(Loshchilov & Hutter, arXiv:1711.05101)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums
from swift_optim_zoo._fused import FusedKernel, check_fused
from swift_zoo import ConfigError
from swift_zoo.optim import require_bool, require_in_range, require_non_negative


def sgd_rule(param: torch.Tensor, grad: torch.Tensor, momentum_buffer: torch.Tensor, hyper: Any, *,
             sums: ShardSums | None = None, nesterov: bool = False, decoupled: bool = True,
             decay: bool = False) -> None:
    """One SGD step; ``hyper`` = ``(lr, momentum, weight_decay, keep, scale)`` with ``b <- keep b + scale g``
    (``keep = momentum``, ``scale = 1 - dampening``; 0 and 1 on the first step: the buffer starts at the gradient)."""
    lr, momentum, weight_decay, keep, scale = (hyper[i] for i in range(5))
    if decay and not decoupled:
        grad = grad + param * weight_decay
    momentum_buffer.mul_(keep).add_(grad * scale)
    direction = grad + momentum_buffer * momentum if nesterov else momentum_buffer
    if decay and decoupled:
        param.mul_(1 - lr * weight_decay)
    param.sub_(direction * lr)


SGD_KERNEL = FusedKernel(sgd_rule, native=_native_elementwise.SGD)


class SGD(ElementwiseOptimizer):
    r"""SGD with heavy-ball or Nesterov momentum and (by default) decoupled weight decay.

    .. math::
        b \leftarrow \mu b + (1-\tau) g\ (b_1 = g),\qquad
        d = \begin{cases} g + \mu b & \text{nesterov}\\ b & \text{otherwise}\end{cases},\qquad
        \theta \leftarrow \theta(1-\eta\lambda) - \eta d

    (torch's momentum form: ``dampening`` :math:`\tau`, the buffer starts at the first gradient). With
    ``decoupled_weight_decay=False`` the decay is L2, :math:`g \leftarrow g + \lambda\theta`, exactly
    ``torch.optim.SGD``; the default decoupled form is SGDW (pytorch_optimizer's ``SGDW``), whose decay does not
    pass through the momentum. ``fused=True`` runs the per-tensor rule as one C kernel pass for float32 CPU
    tensors (:mod:`swift_optim_zoo._native_elementwise`) and compiles it elsewhere.

    Defaults: ``lr=1e-3, momentum=0.9, dampening=0, nesterov=False, weight_decay=0``. State:
    ``momentum_buffer`` (parameter dtype), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: sgd
          optimizer_kwargs: {lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
    """

    name = "sgd"
    state_keys = ("momentum_buffer",)
    kernel = SGD_KERNEL

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.9, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, decoupled_weight_decay: bool = True,
                 fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr),
            "momentum": require_in_range(owner, "momentum", momentum, 0.0, 1.0, high_inclusive=False),
            "dampening": require_in_range(owner, "dampening", dampening, 0.0, 1.0),
            "nesterov": require_bool(owner, "nesterov", nesterov),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "decoupled_weight_decay": require_bool(owner, "decoupled_weight_decay", decoupled_weight_decay),
            "fused": fused,
        }
        if nesterov and (momentum == 0 or dampening != 0):
            message = (f"{owner}: nesterov=True needs momentum > 0 and dampening 0, got momentum={momentum}, "
                       f"dampening={dampening}")
            raise ConfigError(message, key="nesterov", expected="momentum > 0 and dampening == 0",
                              found=(momentum, dampening))
        super().__init__(params, defaults)

    def _hyper(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[float, ...]:
        first = state["step"] == 1
        return (group["lr"], group["momentum"], group["weight_decay"], 0.0 if first else group["momentum"],
                1.0 if first else 1.0 - group["dampening"])

    def _flags(self, group: Mapping[str, Any], param: torch.Tensor) -> dict[str, bool]:
        return {"nesterov": group["nesterov"], "decoupled": group["decoupled_weight_decay"],
                "decay": group["weight_decay"] != 0}
