"""Prodigy (Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", arXiv:2306.06101)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_optim_zoo._elementwise import ElementwiseOptimizer, ShardSums
from swift_optim_zoo._stepping import stepped_params
from swift_zoo import ConfigError, DistributedCapability
from swift_zoo.optim import (
    is_dtensor,
    local_tensor,
    require_betas,
    require_bool,
    require_in_range,
    require_non_negative,
    require_positive,
)

_GLOBAL_KEYS = ("d", "d_max", "d_numerator", "k")


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
    takes the same :math:`d`. ``safeguard_warmup`` uses :math:`d\,\eta` instead of :math:`\eta_d` in :math:`s`.
    Every param group shares :math:`d`; as the reference, groups may differ in ``lr`` only by setting it to 0.

    Defaults (the official's): ``lr=1.0, betas=(0.9, 0.999), beta3=None`` (:math:`\sqrt{\beta_2}`), ``eps=1e-8,
    weight_decay=0`` (decoupled), ``d0=1e-6, d_coef=1, growth_rate=None`` (unbounded), ``use_bias_correction=False,
    safeguard_warmup=False``. State: ``exp_avg``, ``exp_avg_sq``, ``s``, ``p0`` (parameter dtype), ``step``; the
    shared :math:`d`, :math:`d_\text{max}`, :math:`r` and step count live in every param group.

    .. code-block:: yaml

        training_args:
          optimizer_type: prodigy
          optimizer_kwargs: {lr: 1.0, weight_decay: 0.01, safeguard_warmup: true}
          lr_scheduler_type: cosine   # schedules still help: they scale d * lr
    """

    distributed: ClassVar[DistributedCapability] = TENSOR_SUMS
    name = "prodigy"
    state_keys = ("exp_avg", "exp_avg_sq", "s", "p0")

    def __init__(self, params: Any, lr: float = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                 beta3: float | None = None, eps: float = 1e-8, weight_decay: float = 0.0, d0: float = 1e-6,
                 d_coef: float = 1.0, growth_rate: float | None = None, use_bias_correction: bool = False,
                 safeguard_warmup: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
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
            "d": d0, "d_max": d0, "d_numerator": 0.0, "k": 0,
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
        numerator = first["d_numerator"] * beta3
        partial = {}  # (device, sharded mesh or None) -> [numerator, denominator] partial sums
        live = []
        for group in self.param_groups:
            s_rate = (d / d0) * (d * lr if group["safeguard_warmup"] else dlr)
            for param, state in stepped_params(self, group, lambda p, g=group: self._new_state(p, g)):
                if group["lr"] == 0:
                    continue
                live.append((param, group))
                x, g = local_tensor(param), local_tensor(param.grad)
                m, v, s, p0 = (local_tensor(state[key]) for key in self.state_keys)
                key = (x.device, id(param.device_mesh) if is_dtensor(param) else None)
                sums = partial.setdefault(key, [torch.zeros((), dtype=torch.float64, device=x.device),
                                                 torch.zeros((), dtype=torch.float64, device=x.device),
                                                 ShardSums(param) if is_dtensor(param) else None])
                sums[0] += (d / d0) * dlr * torch.dot(g.flatten().double(), (p0 - x).flatten().double())
                m.mul_(beta1).add_(g, alpha=d * (1 - beta1))
                v.mul_(beta2).addcmul_(g, g, value=d * d * (1 - beta2))
                s.mul_(beta3).add_(g, alpha=s_rate)
                sums[1] += s.abs().sum(dtype=torch.float64)
        if not live:
            return
        totals = [0.0, 0.0]
        for num, den, shard in partial.values():
            if shard is not None:
                num, den = shard.sum(num), shard.sum(den)
            totals[0] += float(num)
            totals[1] += float(den)
        numerator += totals[0]
        denominator = totals[1]
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
            x = local_tensor(param)
            m, v = local_tensor(state["exp_avg"]), local_tensor(state["exp_avg_sq"])
            if group["weight_decay"] != 0:
                x.mul_(1 - group["weight_decay"] * dlr)
            x.addcdiv_(m, v.sqrt().add_(d * group["eps"]), value=-dlr)
