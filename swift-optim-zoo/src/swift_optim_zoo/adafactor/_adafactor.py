"""Adafactor (Shazeer & Stern, arXiv:1804.04235), with transformers' defaults and arithmetic."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from swift_optim_zoo._catalogue._distributed import ADAFACTOR
from swift_optim_zoo._fused import check_fused
from swift_optim_zoo.adafactor._fused_rule import fused_adafactor_step
from swift_optim_zoo.adafactor._rule import adafactor_state_elements, adafactor_update, init_adafactor_state, rms
from swift_optim_zoo.adafactor._sharded import sharded_adafactor_step
from swift_optim_zoo.galore._hybrid import compute_dtype
from swift_zoo import ConfigError
from swift_zoo.optim import ZooOptimizer, is_row_sharded, require_in_range, require_non_negative, require_positive


class Adafactor(ZooOptimizer):
    r"""Adafactor (Shazeer & Stern, ICML 2018, arXiv:1804.04235), as ``transformers.Adafactor`` computes it.

    Per parameter, with :math:`t` the step (from 1), :math:`\hat\beta_{2,t} = 1 - t^{c}`:

    .. math::
        R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{cols}}(g^2+\epsilon_1),\quad
        C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{rows}}(g^2+\epsilon_1),\\
        u = g \big/ \sqrt{R_t C_t^\top / \mathrm{mean}(R_t)},\quad
        u \leftarrow \rho_t\,u / \max(1, \mathrm{RMS}(u)/d),\quad
        u \leftarrow \beta_1 m + (1-\beta_1) u\ (\text{if } \beta_1),\\
        \theta \leftarrow \theta - \rho_t \lambda\theta,\qquad \theta \leftarrow \theta - u

    Tensors with 2 or more dimensions are factored over their last two (row and column statistics);
    1-D tensors keep a full second moment. The step size :math:`\rho_t` is ``lr``, or with
    ``relative_step`` :math:`\min(10^{-2}, 1/\sqrt t)` (``warmup_init``: :math:`\min(10^{-6} t, 1/\sqrt t)`),
    times :math:`\max(\epsilon_2, \mathrm{RMS}(\theta))` with ``scale_parameter``.

    Defaults follow ``transformers.Adafactor``: ``eps=(1e-30, 1e-3), clip_threshold=1.0,
    decay_rate=-0.8, beta1=None, weight_decay=0.0``. ``lr=None`` (default) means transformers'
    default mode, ``relative_step=True, scale_parameter=True``; giving ``lr`` means the mode the HF
    Trainer uses for ``optim="adafactor"``, ``relative_step=False, scale_parameter=False``. Either
    flag can still be set explicitly; an explicit ``lr`` with ``relative_step=True`` is an error (as
    in transformers). In relative-step mode the group ``lr`` is ``None`` and LR schedulers do not apply.

    State for a ``m x n`` matrix: ``m + n`` float32 (``+ m n`` with ``beta1``); 1-D: ``n`` float32.
    bf16 parameters are updated through a float32 copy, the state stays float32. ``fused=True`` runs
    a matrix's step in the three passes its dependencies need (statistics, update RMS, write), as C
    kernels for float32 on CPU (:mod:`swift_optim_zoo._native`; 1-D tensors in two passes of
    :mod:`swift_optim_zoo._native_rules`) and compiled loops otherwise (:mod:`swift_optim_zoo._fused`); see
    :mod:`swift_optim_zoo.adafactor._fused_rule`. Same arithmetic, summed in another order.

    Under FSDP2 (row-sharded DTensor parameters) the statistics come from all-reduced partial sums
    (:mod:`swift_optim_zoo.adafactor._sharded`: ``n + 3`` words per ``m x n`` matrix per step, no matrix
    moves); the eager arithmetic, summed in another order. An lr of 0 moves nothing, in relative-step mode too.

    .. code-block:: yaml

        training_args:
          optimizer_type: adafactor
          optimizer_kwargs: {lr: 1.0e-3}
    """

    name = "adafactor"
    distributed = ADAFACTOR

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = -0.8,
        beta1: float | None = None,
        weight_decay: float = 0.0,
        scale_parameter: bool | None = None,
        relative_step: bool | None = None,
        warmup_init: bool = False,
        fused: bool = False,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        if relative_step is None:
            relative_step = lr is None
        if scale_parameter is None:
            scale_parameter = relative_step
        if lr is not None:
            require_non_negative(owner, "lr", lr)
            if relative_step:
                message = f"{owner}: an explicit 'lr' ({lr}) cannot be combined with relative_step=True"
                raise ConfigError(message, key="lr", expected="lr=None with relative_step=True", found=lr)
        elif not relative_step:
            message = f"{owner}: 'lr' is None but relative_step=False: give an lr or set relative_step=True"
            raise ConfigError(message, key="lr", expected="a float >= 0", found=None)
        if warmup_init and not relative_step:
            message = f"{owner}: warmup_init=True needs relative_step=True"
            raise ConfigError(message, key="warmup_init", expected="relative_step=True", found=warmup_init)
        if not isinstance(eps, (tuple, list)) or len(eps) != 2:
            message = f"{owner}: 'eps' expects a pair (eps1, eps2), got {eps!r}"
            raise ConfigError(message, key="eps", expected="a pair (eps1, eps2)", found=eps)
        require_non_negative(owner, "eps[0]", eps[0])
        require_non_negative(owner, "eps[1]", eps[1])
        require_positive(owner, "clip_threshold", clip_threshold)
        require_in_range(owner, "decay_rate", decay_rate, -math.inf, 0.0, low_inclusive=False, high_inclusive=False)
        if beta1 is not None:
            require_in_range(owner, "beta1", beta1, 0.0, 1.0, high_inclusive=False)
        require_non_negative(owner, "weight_decay", weight_decay)
        check_fused(owner, fused)
        defaults = {
            "lr": lr, "eps": tuple(eps), "clip_threshold": clip_threshold, "decay_rate": decay_rate,
            "beta1": beta1, "weight_decay": weight_decay, "scale_parameter": scale_parameter,
            "relative_step": relative_step, "warmup_init": warmup_init, "fused": fused,
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An explicit lr (HF Trainer mode), so LR changes and schedules apply."""
        return {"lr": 1e-2}

    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """Row and column statistics (or a full second moment for 1-D), plus ``exp_avg`` with ``beta1``."""
        itemsize = torch.empty((), dtype=compute_dtype(param)).element_size()
        return adafactor_state_elements(param.shape, use_first_moment=group["beta1"] is not None) * itemsize

    @staticmethod
    def _step_size(group: Mapping[str, Any], step: int, param_rms: float) -> float:
        size = group["lr"]
        if group["relative_step"] and size != 0:  # an lr of 0 (DCP's state initialisation sets it) moves nothing
            floor = 1e-6 * step if group["warmup_init"] else 1e-2
            size = min(floor, 1.0 / math.sqrt(step))
        scale = max(group["eps"][1], param_rms) if group["scale_parameter"] else 1.0
        return scale * size

    def _step(self) -> None:
        sharded: list[tuple[torch.Tensor, dict[str, Any]]] = []
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    message = f"{self.name}: sparse gradients are not supported"
                    raise RuntimeError(message)
                if is_row_sharded(param):
                    sharded.append((param, group))
                    continue
                dtype = compute_dtype(param)
                grad = param.grad.to(dtype)
                state = self.state[param]
                if "step" not in state:
                    state["step"] = 0
                    init_adafactor_state(state, grad.shape, dtype=dtype, device=grad.device,
                                         use_first_moment=group["beta1"] is not None)
                state["step"] += 1
                if group.get("fused", False) and param.is_contiguous():
                    relative_size = self._step_size({**group, "scale_parameter": False}, state["step"], 0.0)
                    if fused_adafactor_step(param, grad.contiguous(), state, group, relative_size=relative_size):
                        continue
                param_rms = float(rms(param.detach().to(dtype))) if group["scale_parameter"] else 0.0
                step_size = self._step_size(group, state["step"], param_rms)
                update = adafactor_update(
                    grad, state, step=state["step"], lr=step_size, eps1=float(group["eps"][0]),
                    clip_threshold=float(group["clip_threshold"]), decay_rate=float(group["decay_rate"]),
                    beta1=group["beta1"],
                )
                in_place = param.dtype == dtype
                work = param if in_place else param.detach().to(dtype)
                if group["weight_decay"]:
                    work.mul_(1.0 - group["weight_decay"] * step_size)
                work.sub_(update)
                if not in_place:
                    param.copy_(work)
        if sharded:
            sharded_adafactor_step(self, sharded, self._step_size, compute_dtype)

