"""Prodigy (Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", arXiv:2306.06101)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo import _native_elementwise
from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums, run_rule
from swift_optim_zoo._fused import FusedKernel, check_fused
from swift_optim_zoo._stepping import stepped_params
from swift_zoo import ConfigError, DistributedCapability
from swift_zoo.optim import (
    is_dtensor,
    require_betas,
    require_bool,
    require_in_range,
    require_non_negative,
    require_positive,
)

_GLOBAL_KEYS = ("d", "d_max", "d_numerator", "k")


def prodigy_statistics_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                            s: torch.Tensor, p0: torch.Tensor, hyper: Any, *, sums: ShardSums | None = None
                            ) -> torch.Tensor:
    """Prodigy's first pass on one tensor: the moments and ``s`` in place; returns this tensor's (local) terms of
    the two global sums, ``[(d/d0) dlr <g, x0 - x>, ||s||_1]``. ``hyper`` = ``(numerator_scale, beta1, beta2,
    beta3, m_rate, v_rate, s_rate)``."""
    numerator_scale, beta1, beta2, beta3, m_rate, v_rate, s_rate = (hyper[i] for i in range(7))
    dot = (grad * (p0 - param)).sum(dtype=torch.float64 if param.dtype == torch.float64 else torch.float32)
    exp_avg.mul_(beta1).add_(grad * m_rate)
    exp_avg_sq.mul_(beta2).add_(grad * grad * v_rate)
    s.mul_(beta3).add_(grad * s_rate)
    return torch.stack([dot * numerator_scale, s.abs().sum(dtype=dot.dtype)])


def prodigy_update_rule(param: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, hyper: Any, *,
                        sums: ShardSums | None = None, decay: bool = False) -> None:
    """Prodigy's second pass: ``x <- x (1 - lambda dlr) - dlr m / (sqrt(v) + d eps)``; ``hyper`` = ``(dlr, d_eps,
    decay_rate)``."""
    dlr, d_eps, decay_rate = hyper[0], hyper[1], hyper[2]
    if decay:
        param.mul_(1 - decay_rate)
    param.sub_(exp_avg / (exp_avg_sq.sqrt() + d_eps) * dlr)


PRODIGY_STATISTICS_KERNEL = FusedKernel(prodigy_statistics_rule, native=_native_elementwise.prodigy_statistics)
PRODIGY_UPDATE_KERNEL = FusedKernel(prodigy_update_rule, native=_native_elementwise.PRODIGY_UPDATE)


class Prodigy(ElementwiseOptimizer):
    r"""Prodigy: Adam whose step size :math:`d` is estimated from the distance travelled, so ``lr`` stays 1.

    Every step, with :math:`d` shared by all parameters, :math:`\eta_d = d\cdot\eta\cdot c_t` (:math:`c_t` the
    optional bias correction :math:`\sqrt{1-\beta_2^t}/(1-\beta_1^t)`):

    .. math::
        r \leftarrow \beta_3 r + \frac{d}{d_0}\eta_d\,\langle g, x_0 - x\rangle,\quad
        s \leftarrow \beta_3 s + \frac{d}{d_0}\eta_d\, g,\quad
        m \leftarrow \beta_1 m + d(1-\beta_1) g,\quad v \leftarrow \beta_2 v + d^2(1-\beta_2) g^2,\\
        \hat d = d_\text{coef}\,\frac{r}{\lVert s\rVert_1},\quad
        d \leftarrow \min\big(\max(d_\text{max}, \hat d),\ d\cdot\text{growth}\big),\qquad
        x \leftarrow x(1 - \lambda\eta_d) - \eta_d\,\frac{m}{\sqrt{v} + d\,\epsilon}

    (Algorithm 4 of arXiv:2306.06101 as the official ``prodigyopt`` implements it: :math:`r` and
    :math:`\lVert s\rVert_1` are sums over every parameter; the update uses the :math:`\eta_d` of the step's start
    and the new :math:`d` in the denominator; :math:`d` is raised to :math:`\hat d` only while it is still
    :math:`d_0`, afterwards bounded by the running max). Under FSDP2 the two sums are all-reduced, so every rank
    takes the same :math:`d` (within 1e-6 of one process's: the sums add in another order). ``safeguard_warmup`` uses :math:`d\,\eta` instead of :math:`\eta_d` in :math:`s`.
    Every param group shares :math:`d`; as the reference, groups may differ in ``lr`` only by setting it to 0.

    Defaults (the official's): ``lr=1.0, betas=(0.9, 0.999), beta3=None`` (:math:`\sqrt{\beta_2}`), ``eps=1e-8,
    weight_decay=0`` (decoupled), ``d0=1e-6, d_coef=1, growth_rate=None`` (unbounded), ``use_bias_correction=False,
    safeguard_warmup=False, fused=False``. ``fused=True`` runs the two passes (moments and the two sums; the
    write) as C kernels for float32 CPU tensors (:mod:`swift_optim_zoo._native_elementwise`) and compiles them
    elsewhere. State: ``exp_avg``, ``exp_avg_sq``, ``s``, ``p0`` (parameter dtype), ``step``; the
    shared :math:`d`, :math:`d_\text{max}`, :math:`r` and step count live in every param group.

    .. code-block:: yaml

        training_args:
          optimizer_type: prodigy
          optimizer_kwargs: {lr: 1.0, weight_decay: 0.01, safeguard_warmup: true}
          lr_scheduler_type: cosine   # schedules still help: they scale d * lr
    """

    distributed: ClassVar[DistributedCapability] = TENSOR_SUMS
    whole_tensor_sums: ClassVar[bool] = True
    name = "prodigy"
    state_keys = ("exp_avg", "exp_avg_sq", "s", "p0")

    def __init__(self, params: Any, lr: float = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                 beta3: float | None = None, eps: float = 1e-8, weight_decay: float = 0.0, d0: float = 1e-6,
                 d_coef: float = 1.0, growth_rate: float | None = None, use_bias_correction: bool = False,
                 safeguard_warmup: bool = False, fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        if growth_rate is not None:
            require_in_range(owner, "growth_rate", growth_rate, 1.0, 1e30)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas),
            "beta3": None if beta3 is None else require_in_range(owner, "beta3", beta3, 0.0, 1.0,
                                                                 high_inclusive=False),
            "eps": require_non_negative(owner, "eps", eps),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "d0": require_positive(owner, "d0", d0), "d_coef": require_positive(owner, "d_coef", d_coef),
            "growth_rate": growth_rate,
            "use_bias_correction": require_bool(owner, "use_bias_correction", use_bias_correction),
            "safeguard_warmup": require_bool(owner, "safeguard_warmup", safeguard_warmup),
            "d": d0, "d_max": d0, "d_numerator": 0.0, "k": 0, "fused": fused,
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """A larger d0, so the small problems of the conformance suite move from the first steps."""
        return {"d0": 1e-3}

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._new_state(param, group)
        state["p0"].copy_(param.detach())
        return state

    def _step(self) -> None:
        first = self.param_groups[0]
        d, d0, k = first["d"], first["d0"], first["k"]
        beta1, beta2 = first["betas"]
        beta3 = first["beta3"] if first["beta3"] is not None else math.sqrt(beta2)
        lr = max(g["lr"] for g in self.param_groups)
        if any(g["lr"] not in (lr, 0.0) for g in self.param_groups):
            message = (f"{self._owner}: every param group shares d, so their lr must be equal or 0, got "
                       f"{[g['lr'] for g in self.param_groups]}")
            raise ConfigError(message, key="lr", expected="one lr (or 0) for every group",
                              found=[g["lr"] for g in self.param_groups])
        correction = math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1)) if first["use_bias_correction"] else 1.0
        dlr = d * lr * correction
        partial: dict[Any, list[Any]] = {}  # one [sums, ShardSums or None] per (device, mesh, replicated)
        live = []
        for group in self.param_groups:
            s_rate = (d / d0) * (d * lr if group["safeguard_warmup"] else dlr)
            hyper = ((d / d0) * dlr, beta1, beta2, beta3, d * (1 - beta1), d * d * (1 - beta2), s_rate)
            for param, state in stepped_params(self, group, lambda p, g=group: self._new_state(p, g)):
                if group["lr"] == 0:
                    continue
                live.append((param, group))
                tensors = [param, param.grad, *(state[key] for key in self.state_keys)]
                sums = run_rule(PRODIGY_STATISTICS_KERNEL, tensors, hyper, {}, fused=group["fused"],
                                owner=self._tag).double()
                shard = ShardSums(param) if is_dtensor(param) else None
                key = (sums.device, None if shard is None else (id(param.device_mesh), shard.replicated))
                partial.setdefault(key, [torch.zeros(2, dtype=torch.float64, device=sums.device), shard])[0] += sums
        if not live:
            return
        totals = torch.zeros(2, dtype=torch.float64)
        for sums, shard in partial.values():
            totals += (sums if shard is None else shard.all_reduce(sums)).cpu()
        numerator = first["d_numerator"] * beta3 + float(totals[0])
        denominator = float(totals[1])
        d_max = first["d_max"]
        if denominator > 0 and lr > 0:
            d_hat = first["d_coef"] * numerator / denominator
            if d == d0:
                d = max(d, d_hat)
            d_max = max(d_max, d_hat)
            d = d_max if first["growth_rate"] is None else min(d_max, d * first["growth_rate"])
        for group in self.param_groups:
            group.update({"d": d, "d_max": d_max, "d_numerator": numerator, "k": k + 1})
        if denominator == 0:
            return
        for param, group in live:
            state = self.state[param]
            hyper = (dlr, d * group["eps"], group["weight_decay"] * dlr)
            run_rule(PRODIGY_UPDATE_KERNEL, [param, state["exp_avg"], state["exp_avg_sq"]], hyper,
                     {"decay": group["weight_decay"] != 0}, fused=group["fused"], owner=self._tag)
