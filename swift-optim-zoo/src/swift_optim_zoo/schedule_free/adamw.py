"""Schedule-Free AdamW (Defazio et al., "The Road Less Scheduled", arXiv:2405.15682)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from swift_optim_zoo import _native_rules
from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_optim_zoo._fused import FusedKernel, can_alias, check_fused
from swift_zoo import OptimizerModeError
from swift_zoo.optim import (
    ZooOptimizer,
    local_tensor,
    require_betas,
    require_choice,
    require_finite,
    require_in_range,
    require_int,
    require_non_negative,
)

BIAS_CORRECTIONS = ("denominator", "step_size")


class ScheduleFreeAdamW(ZooOptimizer):
    r"""Schedule-Free AdamW: interpolation plus averaging in place of a decaying LR schedule.

    Three sequences: the base iterate :math:`z`, the average :math:`x` (what you evaluate) and the
    point :math:`y = (1-\beta_1) z + \beta_1 x` where gradients are taken. At step :math:`t`
    (:math:`k = t - 1` steps done), with :math:`g` the gradient at :math:`y`:

    .. math::
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\qquad
        \gamma_t = \eta\,\min(1, t/\text{warmup}),\\
        c_t = \frac{w_t}{\sum_{i\le t} w_i},\quad w_t = t^{r}\,(\max_{i\le t}\gamma_i)^{p},\qquad
        u = g / \big(\sqrt{v / (1-\beta_2^t)} + \epsilon\big) + \lambda y,\\
        z \leftarrow z - \gamma_t u,\qquad
        x \leftarrow (1-c_t)\,x + c_t\,z

    (``p`` = ``weight_lr_power``; weight decay is taken at :math:`y`). This is the form of schedulefree >= 1.3
    (Nov 2024; 1.4.1 and pytorch_optimizer 4.1 agree): the second moment is bias-corrected in the denominator.
    ``bias_correction="step_size"`` reproduces schedulefree <= 1.2 instead, which puts
    :math:`\sqrt{1-\beta_2^t}` into :math:`\gamma_t` (and so into the averaging weights :math:`w_t`) and divides
    by :math:`\sqrt{v} + \epsilon`; use it only to continue a run started with that version. The parameter tensor holds
    :math:`y` in train mode and :math:`x` in eval mode; ``y`` is updated in place without storing
    ``x`` (the reference's formulation). State: ``z`` and ``exp_avg_sq`` (parameter dtype).

    **Modes.** Call ``optimizer.train()`` before training steps and ``optimizer.eval()`` before
    evaluating or saving weights you mean to use: ``eval()`` moves the parameters from ``y`` to
    ``x``, ``train()`` back (spec hooks ``("train", "eval")``). ``step()`` in eval mode raises
    :class:`swift_zoo.OptimizerModeError`. A fresh optimizer starts in train mode: before the
    first step ``x = y = z``, so both modes are the same point (the official package starts in
    eval mode to force the call; a harmless difference). Each param group stores ``train_mode``,
    so ``state_dict()`` records which sequence the parameters held when it was taken: load the
    model weights and the optimizer state saved at the same moment and the pair is consistent;
    the usual practice is to call ``eval()`` before saving.

    Defaults (the reference's): ``lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    warmup_steps=0, r=0, weight_lr_power=2, bias_correction="denominator"``. ``foreach=None`` uses multi-tensor ops on CUDA and a
    per-tensor loop with reused scratch buffers on CPU (as :class:`swift_optim_zoo.lion.Lion`).
    ``fused=True`` runs the per-tensor rule in one pass over memory: a C kernel for float32 CPU
    tensors (:mod:`swift_optim_zoo._native_rules`), else compiled (:mod:`swift_optim_zoo._fused`);
    it overrides ``foreach``.

    .. code-block:: yaml

        training_args:
          optimizer_type: schedule_free_adamw
          optimizer_kwargs: {lr: 2.5e-3, warmup_steps: 100}
          lr_scheduler_type: constant_with_warmup   # or none: warmup is built in
    """

    name = "schedule_free_adamw"
    distributed = ELEMENT_WISE
    elementwise = True
    hooks = ("train", "eval")

    def __init__(
        self,
        params: Any,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = None,
        fused: bool = False,
        bias_correction: Literal["denominator", "step_size"] = "denominator",
    ) -> None:
        owner = f"optimizer {self.name!r}"
        require_non_negative(owner, "lr", lr)
        beta1, _ = require_betas(owner, "betas", betas)
        require_in_range(owner, "betas[0]", beta1, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        require_non_negative(owner, "eps", eps)
        require_non_negative(owner, "weight_decay", weight_decay)
        require_int(owner, "warmup_steps", warmup_steps, low=0, high=10**9)
        require_finite(owner, "r", r)
        require_in_range(owner, "weight_lr_power", weight_lr_power, 0.0, 100.0)
        check_fused(self.name, fused)
        require_choice(owner, "bias_correction", bias_correction, BIAS_CORRECTIONS)
        defaults = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "warmup_steps": warmup_steps, "r": r, "weight_lr_power": weight_lr_power,
            "foreach": foreach, "fused": fused, "bias_correction": bias_correction, "k": 0, "train_mode": True, "weight_sum": 0.0, "lr_max": -1.0, "scheduled_lr": 0.0,
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for small test problems."""
        return {"lr": 1e-2}

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """``z`` and ``exp_avg_sq`` in the parameter's dtype."""
        return 2 * param.numel() * param.element_size()

    # ------------------------------------------------------------------- modes
    @torch.no_grad()
    def eval(self) -> None:
        """Put the averaged iterate ``x`` into the parameters (``x = y + (1 - 1/beta1)(z - y)``)."""
        for group in self.param_groups:
            if group["train_mode"]:
                self._swap(group, 1 - 1 / group["betas"][0])
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Put the gradient point ``y = x + (1 - beta1)(z - x)`` into the parameters."""
        for group in self.param_groups:
            if not group["train_mode"]:
                self._swap(group, 1 - group["betas"][0])
                group["train_mode"] = True

    def _swap(self, group: dict[str, Any], weight: float) -> None:
        params = [p for p in group["params"] if "z" in self.state.get(p, ())]
        if params:  # FSDP2: on the local rows
            torch._foreach_lerp_([local_tensor(p) for p in params], [local_tensor(self.state[p]["z"]) for p in params],
                                 weight)

    # -------------------------------------------------------------------- step
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update (see :class:`~swift_zoo.optim.ZooOptimizer`); refused in eval mode."""
        for group in self.param_groups:
            if not group["train_mode"]:
                message = (
                    "optimizer 'schedule_free_adamw': step() called in eval mode; expected train mode. "
                    "Call optimizer.train() before training steps (and optimizer.eval() before evaluating "
                    "or saving)."
                )
                raise OptimizerModeError(message)
        return super().step(closure)

    def _step(self) -> None:
        for group in self.param_groups:
            self._group_step(group)

    def _group_step(self, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        k = group["k"]
        warmup = group["warmup_steps"]
        schedule = (k + 1) / warmup if k < warmup else 1.0
        bias_correction2 = 1 - beta2 ** (k + 1)
        lr = group["lr"] * schedule
        if group.get("bias_correction", "denominator") == "step_size":  # schedulefree <= 1.2
            lr, bias_correction2 = lr * math.sqrt(bias_correction2), 1.0
        group["scheduled_lr"] = lr
        lr_max = group["lr_max"] = max(lr, group["lr_max"])
        weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
        ys, grads, zs, exp_avg_sqs = [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                message = "optimizer 'schedule_free_adamw': sparse gradients are not supported"
                raise RuntimeError(message)
            state = self.state[p]
            if "z" not in state:
                state["z"] = p.detach().clone(memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            ys.append(local_tensor(p))  # FSDP2: the local rows (element-wise rule)
            grads.append(local_tensor(p.grad))
            zs.append(local_tensor(state["z"]))
            exp_avg_sqs.append(local_tensor(state["exp_avg_sq"]))
        group["k"] = k + 1
        if not ys:
            return
        hyper = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": group["eps"], "bias_correction2": bias_correction2,
                 "weight_decay": group["weight_decay"], "ckp1": ckp1}
        if group.get("fused", False):
            _fused_step(ys, grads, zs, exp_avg_sqs, **hyper)
            return
        foreach = group["foreach"]
        if foreach is None:  # as Lion: per tensor on CPU (cache-friendly), multi-tensor on CUDA
            foreach = all(p.device.type == "cuda" for p in ys)
        if not foreach:
            _single_tensor_step(ys, grads, zs, exp_avg_sqs, **hyper)
            return
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denoms = torch._foreach_div(exp_avg_sqs, bias_correction2)
        torch._foreach_sqrt_(denoms)
        torch._foreach_add_(denoms, group["eps"])
        updates = torch._foreach_div(grads, denoms)  # a new tensor: p.grad is left as it is
        del denoms
        if group["weight_decay"] != 0:
            torch._foreach_add_(updates, ys, alpha=group["weight_decay"])
        torch._foreach_lerp_(ys, zs, ckp1)
        torch._foreach_add_(ys, updates, alpha=lr * (beta1 * (1 - ckp1) - 1))
        torch._foreach_sub_(zs, updates, alpha=lr)


def _single_tensor_step(ys: list[torch.Tensor], grads: list[torch.Tensor], zs: list[torch.Tensor],
                        exp_avg_sqs: list[torch.Tensor], *, lr: float, beta1: float, beta2: float, eps: float,
                        bias_correction2: float, weight_decay: float, ckp1: float) -> None:
    """The same update one tensor at a time, with two scratch buffers reused across tensors."""
    scratch: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
    for y, grad, z, exp_avg_sq in zip(ys, grads, zs, exp_avg_sqs):
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        key = (y.dtype, y.device)
        if key not in scratch or scratch[key].numel() < 2 * y.numel():
            largest = max(t.numel() for t in ys if (t.dtype, t.device) == key)
            scratch[key] = torch.empty(2 * largest, dtype=y.dtype, device=y.device)
        n = y.numel()
        denom = torch.div(exp_avg_sq.reshape(-1), bias_correction2, out=scratch[key][:n]).sqrt_().add_(eps)
        update = torch.div(grad.reshape(-1), denom, out=scratch[key][n:2 * n]).view(y.shape)
        if weight_decay != 0:
            update.add_(y, alpha=weight_decay)
        y.lerp_(z, ckp1)
        y.add_(update, alpha=lr * (beta1 * (1 - ckp1) - 1))
        z.sub_(update, alpha=lr)


def _schedule_free_rule(y: torch.Tensor, grad: torch.Tensor, z: torch.Tensor, exp_avg_sq: torch.Tensor,
                        hyper: torch.Tensor) -> None:
    """The step on one tensor, in place; ``hyper`` = ``(lr, beta1, beta2, eps, bias_correction2, weight_decay, ckp1)``."""
    lr, beta1, beta2, eps, bias_correction2, weight_decay, ckp1 = (hyper[i] for i in range(7))
    exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
    update = grad / ((exp_avg_sq / bias_correction2).sqrt() + eps) + y * weight_decay
    # torch.lerp's two-sided formula, as the eager path: at ckp1 = 1 (first step) y lands exactly on z
    diff = z - y
    y.copy_(torch.where(ckp1 < 0.5, y + diff * ckp1, z - diff * (1 - ckp1)))
    y.add_(update * (lr * (beta1 * (1 - ckp1) - 1)))
    z.sub_(update * lr)


SCHEDULE_FREE_KERNEL = FusedKernel(_schedule_free_rule, native=_native_rules.schedule_free)


def _fused_step(ys: list[torch.Tensor], grads: list[torch.Tensor], zs: list[torch.Tensor],
                exp_avg_sqs: list[torch.Tensor], *, lr: float, beta1: float, beta2: float, eps: float,
                bias_correction2: float, weight_decay: float, ckp1: float) -> None:
    scalars = (lr, beta1, beta2, eps, bias_correction2, weight_decay, ckp1)
    for y, grad, z, exp_avg_sq in zip(ys, grads, zs, exp_avg_sqs):
        if not (can_alias(y, grad, z, exp_avg_sq) and grad.dtype == y.dtype):
            _single_tensor_step([y], [grad], [z], [exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                bias_correction2=bias_correction2, weight_decay=weight_decay, ckp1=ckp1)
            continue
        SCHEDULE_FREE_KERNEL(y, grad, z, exp_avg_sq, scalars=scalars, owner="schedule_free_adamw", flat=True)
