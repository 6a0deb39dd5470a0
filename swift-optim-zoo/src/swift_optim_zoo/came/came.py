"""CAME (Luo et al., "CAME: Confidence-guided Adaptive Memory Efficient Optimization", arXiv:2307.02047)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo._catalogue._distributed import CAME as CAME_RECORD
from swift_optim_zoo._stepping import stepped_params
from swift_optim_zoo.came._rule import came_update
from swift_optim_zoo.came._sharded import init_sharded_state, sharded_came_step
from swift_zoo import ConfigError, DistributedCapability
from swift_zoo.optim import ZooOptimizer, is_row_sharded, require_betas, require_non_negative, require_positive


class CAME(ZooOptimizer):
    r"""CAME: Adafactor's factored second moment plus a factored *confidence* (the EMA of the squared distance
    between the update and its momentum) that scales the momentum.

    For a matrix (the last two dimensions of a tensor of 2 or more; leading dimensions are batched):

    .. math::
        u = g\,/\sqrt{\hat V},\ \hat V = \mathrm{factored}(\beta_2\text{-EMA of } g^2 + \epsilon_1),\quad
        u \leftarrow u / \max(1, \mathrm{RMS}(u)/d),\quad m \leftarrow \beta_1 m + (1-\beta_1) u,\\
        U \leftarrow \beta_3\text{-EMA, factored, of } (u - m)^2 + \epsilon_2,\qquad
        \theta \leftarrow \theta(1-\eta\lambda) - \eta\, m / \sqrt{\hat U}

    (Algorithm 1 of arXiv:2307.02047; the factored estimate is Adafactor's :math:`R C^\top/\mathrm{sum}(R)` from
    row and column means). Tensors of fewer than 2 dimensions keep an unfactored :math:`v` and take :math:`m`
    itself as the update, as the official code. The statistics need a matrix only through row and column sums:
    under FSDP2 each rank works on its rows and three all-reduces of partial sums per step (all parameters
    together) complete the column statistics, the row statistics' means and the RMS
    (:mod:`swift_optim_zoo.came._sharded`); ZeRO and FSDP1 flat parameters are refused. Statistics are float32
    for bf16 parameters.

    Defaults (the paper's): ``lr=2e-4, betas=(0.9, 0.999, 0.9999), eps=(1e-30, 1e-16), clip_threshold=1.0,
    weight_decay=0`` (decoupled). State (float32, float64 for float64 parameters) for an ``m x n`` matrix:
    ``exp_avg`` (``m n``) and four vectors (``2(m + n)``); for a vector: ``exp_avg`` and ``exp_avg_sq``.

    .. code-block:: yaml

        training_args:
          optimizer_type: came
          optimizer_kwargs: {lr: 2.0e-4, weight_decay: 0.01}
    """

    name = "came"
    elementwise: ClassVar[bool] = False
    distributed: ClassVar[DistributedCapability] = CAME_RECORD

    def __init__(self, params: Any, lr: float = 2e-4, betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
                 eps: tuple[float, float] = (1e-30, 1e-16), clip_threshold: float = 1.0,
                 weight_decay: float = 0.0) -> None:
        owner = f"optimizer {self.name!r}"
        eps = tuple(eps) if isinstance(eps, (tuple, list)) else eps
        if not (isinstance(eps, tuple) and len(eps) == 2):
            message = f"{owner}: eps must be 2 numbers (eps1, eps2), got {eps!r}"
            raise ConfigError(message, key="eps", expected="2 numbers (eps1, eps2)", found=eps)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas, count=3),
            "eps": (require_positive(owner, "eps[0]", eps[0]), require_positive(owner, "eps[1]", eps[1])),
            "clip_threshold": require_positive(owner, "clip_threshold", clip_threshold),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for the conformance suite's small problems."""
        return {"lr": 1e-2}

    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """float32 (float64 for float64 parameters) state: ``exp_avg`` plus 4 vectors for a matrix, plus one
        parameter-sized ``exp_avg_sq`` otherwise."""
        stat = 8 if param.dtype == torch.float64 else 4
        exp_avg = param.numel() * stat
        if param.dim() < 2:
            return exp_avg + param.numel() * stat
        lead = param.numel() // (param.shape[-1] * param.shape[-2])
        return exp_avg + 2 * lead * (param.shape[-1] + param.shape[-2]) * stat

    def _step(self) -> None:
        sharded = []
        for group in self.param_groups:
            for param, state in stepped_params(self, group, self._new_state):
                if is_row_sharded(param):
                    sharded.append((param, group))
                    continue
                came_update(param, param.grad, state, group)
        if sharded:
            sharded_came_step(self, sharded)

    @staticmethod
    def _new_state(param: torch.Tensor) -> dict[str, torch.Tensor]:
        dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
        if is_row_sharded(param):
            return init_sharded_state(param, dtype)
        state = {"exp_avg": torch.zeros(param.shape, dtype=dtype, device=param.device)}
        if param.dim() < 2:
            state["exp_avg_sq"] = torch.zeros(param.shape, dtype=dtype, device=param.device)
            return state
        rows, cols = param.shape[:-1], param.shape[:-2] + param.shape[-1:]
        for name in ("exp_avg_sq", "exp_avg_res"):
            state[f"{name}_row"] = torch.zeros(rows, dtype=dtype, device=param.device)
            state[f"{name}_col"] = torch.zeros(cols, dtype=dtype, device=param.device)
        return state
