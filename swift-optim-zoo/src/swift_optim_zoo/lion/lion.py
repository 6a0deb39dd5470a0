"""Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675)."""

from __future__ import annotations

from typing import Any

import torch

from swift_optim_zoo import _native_rules
from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_optim_zoo._cautious_rules import cautious_lion_step
from swift_optim_zoo._elementwise import narrow_for_cautious
from swift_optim_zoo._fused import FusedKernel, can_alias, check_fused
from swift_zoo.optim import ZooOptimizer, local_tensor, require_betas, require_bool, require_non_negative


class Lion(ZooOptimizer):
    r"""Lion: the sign of an interpolation of momentum and gradient, one state tensor.

    .. math::
        \theta \leftarrow \theta (1 - \eta\lambda),\qquad
        \theta \leftarrow \theta - \eta\,\mathrm{sign}\big(\beta_1 m + (1-\beta_1) g\big),\qquad
        m \leftarrow \beta_2 m + (1-\beta_2) g

    (Algorithm 2 of arXiv:2302.06675; decoupled weight decay). The update has unit magnitude per
    coordinate, so the paper advises an lr 3-10x smaller than AdamW's and a weight decay 3-10x
    larger. Built from a model by :func:`swift_zoo.build_optimizer`, norms and biases get no
    weight decay. ``foreach=None`` (default) uses torch's multi-tensor ops on CUDA and a
    per-tensor loop with one reused scratch buffer on CPU, where it measured 1.6x faster than the
    multi-tensor ops on a 50 M-parameter model (each tensor stays in cache for its four passes).
    ``fused=True`` runs the per-tensor rule in one pass over memory: a C kernel for float32 CPU
    tensors (:mod:`swift_optim_zoo._native_rules`, built once per machine, no compilation at run
    time), else compiled by ``torch.compile`` (:mod:`swift_optim_zoo._fused`); on the 50 M-parameter
    benchmark 2.6x faster than the eager loop, about the time of ``torch.optim.AdamW(fused=True)``;
    it overrides ``foreach``.

    ``cautious=True`` (C-Lion, arXiv:2411.16085): the signed update is masked where it disagrees with the
    gradient's sign and rescaled by ``numel / (kept + 1)`` (:mod:`swift_optim_zoo._cautious_rules`). The count of
    kept elements is a whole-tensor sum: under FSDP2 it is all-reduced (an exact sum: bitwise one process's with
    ``fused=False``; with ``fused=True`` FSDP2 runs the rule eagerly where one process compiles it, so the record
    says untested), and ZeRO / FSDP1 flat partitions, which would cut it, are refused.

    Defaults (the paper's and lion-pytorch's): ``lr=1e-4, betas=(0.9, 0.99), weight_decay=0, cautious=False``.
    State: ``exp_avg`` (parameter dtype).

    .. code-block:: yaml

        training_args:
          optimizer_type: lion
          optimizer_kwargs: {lr: 3.0e-5, weight_decay: 0.1}
    """

    name = "lion"
    distributed = ELEMENT_WISE
    elementwise = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        fused: bool = False,
        cautious: bool = False,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        require_bool(owner, "cautious", cautious)
        require_non_negative(owner, "lr", lr)
        require_betas(owner, "betas", betas, high_inclusive=True)
        require_non_negative(owner, "weight_decay", weight_decay)
        check_fused(self.name, fused)
        defaults = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay, "foreach": foreach, "fused": fused,
                    "cautious": cautious}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        narrow_for_cautious(self, param_group)  # the cautious mask's count: flat partitions would cut it
        super().add_param_group(param_group)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for small test problems (the default 1e-4 suits large models)."""
        return {"lr": 1e-2}

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """One momentum tensor in the parameter's dtype."""
        return param.numel() * param.element_size()

    def _step(self) -> None:
        if any(group.get("cautious") for group in self.param_groups):
            cautious_lion_step(self)
            return
        for group in self.param_groups:
            params, grads, exp_avgs = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    message = "optimizer 'lion': sparse gradients are not supported"
                    raise RuntimeError(message)
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(local_tensor(p))  # FSDP2: the local rows (element-wise rule)
                grads.append(local_tensor(p.grad))
                exp_avgs.append(local_tensor(state["exp_avg"]))
            if not params:
                continue
            beta1, beta2 = group["betas"]
            if group.get("fused", False):
                _fused_lion(params, grads, exp_avgs, lr=group["lr"], beta1=beta1, beta2=beta2,
                            weight_decay=group["weight_decay"])
                continue
            foreach = group["foreach"]
            if foreach is None:  # CPU: per tensor (cache-friendly, measured 1.6x faster); GPU: multi-tensor
                foreach = all(p.device.type == "cuda" for p in params)
            step_fn = _foreach_lion if foreach else _single_tensor_lion
            step_fn(params, grads, exp_avgs, lr=group["lr"], beta1=beta1, beta2=beta2,
                    weight_decay=group["weight_decay"])


def _single_tensor_lion(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor], *,
                        lr: float, beta1: float, beta2: float, weight_decay: float) -> None:
    scratch: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}  # one buffer per step, reused per tensor
    for p, grad, exp_avg in zip(params, grads, exp_avgs):
        key = (exp_avg.dtype, exp_avg.device)
        if key not in scratch or scratch[key].numel() < exp_avg.numel():
            largest = max(e.numel() for e in exp_avgs if (e.dtype, e.device) == key)
            scratch[key] = torch.empty(largest, dtype=exp_avg.dtype, device=exp_avg.device)
        if weight_decay != 0:
            p.mul_(1 - lr * weight_decay)
        if exp_avg.is_contiguous() and grad.is_contiguous() and grad.dtype == exp_avg.dtype:
            update = scratch[key][: exp_avg.numel()].view(exp_avg.shape)
            torch.lerp(exp_avg, grad, 1 - beta1, out=update)
        else:
            update = exp_avg.lerp(grad, 1 - beta1)
        p.add_(update.sign_(), alpha=-lr)
        exp_avg.lerp_(grad, 1 - beta2)


def _foreach_lion(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor], *,
                  lr: float, beta1: float, beta2: float, weight_decay: float) -> None:
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    updates = torch._foreach_lerp(exp_avgs, grads, 1 - beta1)
    torch._foreach_sign_(updates)
    torch._foreach_add_(params, updates, alpha=-lr)
    del updates
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta2)


def _lion_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, hyper: torch.Tensor) -> None:
    """Lion on one tensor, in place; ``hyper`` = ``(lr, beta1, beta2, weight_decay)`` (run by :data:`LION_KERNEL`)."""
    lr, beta1, beta2, weight_decay = hyper[0], hyper[1], hyper[2], hyper[3]
    param.mul_(1 - lr * weight_decay)
    param.sub_(torch.sign(exp_avg * beta1 + grad * (1 - beta1)) * lr)
    exp_avg.mul_(beta2).add_(grad * (1 - beta2))


LION_KERNEL = FusedKernel(_lion_rule, native=_native_rules.lion)


def _fused_lion(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor], *,
                lr: float, beta1: float, beta2: float, weight_decay: float) -> None:
    for p, grad, exp_avg in zip(params, grads, exp_avgs):
        if not (can_alias(p, grad, exp_avg) and grad.dtype == p.dtype):
            _single_tensor_lion([p], [grad], [exp_avg], lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)
            continue
        LION_KERNEL(p, grad, exp_avg, scalars=(lr, beta1, beta2, weight_decay), owner="lion", flat=True)
