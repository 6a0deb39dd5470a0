"""Signum: signSGD with momentum."""

from __future__ import annotations

from typing import Any

import torch

from swift_zoo.optim import ZooOptimizer, local_tensor, require_in_range, require_non_negative


class Signum(ZooOptimizer):
    r"""Signum (Bernstein et al., arXiv:1802.04434): the sign of a momentum buffer.

    .. math:: m_t = \beta m_{t-1} + (1-\beta) g_t,\qquad
              \theta_t = \theta_{t-1}(1 - \eta\lambda) - \eta\,\mathrm{sign}(m_t)

    Written on :class:`swift_zoo.optim.ZooOptimizer`: the frame runs the closure, applies the zoo-wide policy for
    NaN/Inf gradients (skip the step and warn, or raise), refuses state dicts saved by other optimizers and
    enforces the ``distributed`` capability record; this class only implements ``_step``. The rule is
    element-wise, so it works on the local shard of a sharded parameter (``local_tensor``).

    Defaults: ``lr=1e-4, momentum=0.9, weight_decay=0.0``.

    .. code-block:: yaml

        training_args:
          optimizer_type: signum
          optimizer_kwargs: {lr: 1.0e-4}
    """

    name = "signum"
    elementwise = True

    def __init__(self, params: Any, lr: float = 1e-4, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        owner = f"optimizer {self.name!r}"
        require_non_negative(owner, "lr", lr)
        require_in_range(owner, "momentum", momentum, 0.0, 1.0, high_inclusive=False)
        require_non_negative(owner, "weight_decay", weight_decay)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf, param, grad = local_tensor(state["momentum_buffer"]), local_tensor(p), local_tensor(p.grad)
                buf.mul_(group["momentum"]).add_(grad, alpha=1 - group["momentum"])
                param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(torch.sign(buf), alpha=-group["lr"])

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        return param.numel() * param.element_size()
