"""SOAP (Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_optim_zoo._inner_adamw import adamw_state_bytes, inner_adamw_step
from swift_optim_zoo.soap.eigenbasis import (
    accumulate_factors,
    initial_eigenbasis,
    project,
    refresh_eigenbasis,
    rerotate,
)
from swift_zoo.optim import (
    ZooOptimizer,
    local_tensor,
    placeholder,
    require_betas,
    require_in_range,
    require_int,
    require_non_negative,
)


def _compute_dtype(param: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 parameters (never bf16: bf16 preconditioners break)."""
    return torch.promote_types(param.dtype, torch.float32)


def _preconditioned(param: torch.Tensor, max_precond_dim: int) -> list[bool]:
    return [size <= max_precond_dim for size in param.shape]


class SOAP(ZooOptimizer):
    r"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner, refreshed every few steps.

    For a matrix parameter with gradient :math:`G` (>= 2-D tensors: every dimension of size
    <= ``max_precond_dim`` gets a factor):

    .. math::
        L \leftarrow \beta_s L + (1-\beta_s) G G^T,\quad R \leftarrow \beta_s R + (1-\beta_s) G^T G,\\
        G' = Q_L^T G Q_R,\quad m \leftarrow \beta_1 m + (1-\beta_1) G,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) G'^2,\\
        W \leftarrow W - \eta\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
            Q_L \frac{Q_L^T m Q_R}{\sqrt{v} + \epsilon} Q_R^T,\qquad W \leftarrow W(1 - \eta\lambda)

    :math:`Q_L, Q_R` are eigenbases of :math:`L, R`: from ``eigh`` at the first step (which only
    initialises: no update, as in the reference, so the current gradient never enters its own
    projection), then refreshed every ``precondition_frequency`` steps by one power iteration and
    a QR (``v`` is permuted with the basis columns, not rotated). :math:`\beta_s` is
    ``shampoo_beta``, or :math:`\beta_2` when negative. The factors are updated after the
    parameter update. ``m`` is kept in the eigenbasis, as the reference keeps it, and re-rotated
    (back with the old bases, forward with the new) only when the bases change: the reference
    re-rotates it after every step, the same quantity at four more matrix products per step. A
    matrix step is then six products (rotate the gradient, rotate the update back, the two
    factors) plus four and two QRs at a refresh.

    1-D parameters (norms, biases) use plain AdamW (the inner AdamW, from the first step). Not
    implemented from the reference: ``merge_dims``, ``precondition_1d``, ``data_format``.

    Under FSDP2 each matrix's gradient goes whole to one owner rank (balanced by size), which keeps all its
    state (the moments are rotated as a whole each step) and sends every rank its rows of the update; flat
    partitions (ZeRO, FSDP1 ``use_orig_params=False``) are refused.
    ``normalize_grads`` is kept.

    State per matrix (float32, float64 for float64 parameters; never bf16: bf16 preconditioners
    break, HeavyBall#2): ``exp_avg``, ``exp_avg_sq``, ``GG_<dim>``, ``Q_<dim>`` per preconditioned
    dimension, and an int ``step``: an ``m x n`` matrix costs ``2mn + 2m^2 + 2n^2`` floats (3.5x
    AdamW on a square matrix). Factors and bases are plain tensors in ``state_dict()``.

    Defaults (the reference's): ``lr=3e-3, betas=(0.95, 0.95), shampoo_beta=-1, eps=1e-8,
    weight_decay=0.01, precondition_frequency=10, max_precond_dim=10000``.

    .. code-block:: yaml

        training_args:
          optimizer_type: soap
          optimizer_kwargs: {lr: 3.0e-3, precondition_frequency: 10}
    """

    name = "soap"
    distributed = WHOLE_MATRIX

    def __init__(
        self,
        params: Any,
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float = -1.0,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        normalize_grads: bool = False,
        correct_bias: bool = True,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        require_non_negative(owner, "lr", lr)
        require_betas(owner, "betas", betas)
        require_in_range(owner, "shampoo_beta", shampoo_beta, -1.0, 1.0, high_inclusive=False)  # < 0: use betas[1]
        require_non_negative(owner, "eps", eps)
        require_non_negative(owner, "weight_decay", weight_decay)
        require_int(owner, "precondition_frequency", precondition_frequency, low=1, high=10**9)
        require_int(owner, "max_precond_dim", max_precond_dim, low=1, high=1 << 16)
        defaults = {
            "lr": lr, "betas": tuple(betas), "shampoo_beta": shampoo_beta, "eps": eps,
            "weight_decay": weight_decay, "precondition_frequency": precondition_frequency,
            "max_precond_dim": max_precond_dim, "normalize_grads": normalize_grads, "correct_bias": correct_bias,
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for small test problems; refresh the eigenbases often."""
        return {"lr": 1e-2, "precondition_frequency": 2}

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """Matrices: ``w * (2 numel + 2 sum(d^2 for preconditioned d))``, ``w = max(4, itemsize)``; 1-D: AdamW's."""
        if param.dim() < 2:
            return adamw_state_bytes(param)
        sides = sum(size * size for size, on in zip(param.shape, _preconditioned(param, group["max_precond_dim"])) if on)
        return max(4, param.element_size()) * (2 * param.numel() + 2 * sides)

    # ------------------------------------------------------------------- step
    def _owner_computed(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        return param.dim() >= 2

    def _step(self) -> None:
        sharded: list[tuple[torch.Tensor, dict[str, Any]]] = []
        for group in self.param_groups:
            vectors = [p for p in group["params"] if p.grad is not None and p.dim() < 2]
            inner_adamw_step(self, vectors, group)
            for p in group["params"]:
                if p.grad is None or p.dim() < 2:
                    continue
                if p.grad.is_sparse:
                    message = "optimizer 'soap': sparse gradients are not supported"
                    raise RuntimeError(message)
                if self.matrix_owners.owner_of(p) is not None:
                    sharded.append((p, group))
                    continue
                update = self._matrix_update(p, p.grad.to(_compute_dtype(p)), group)
                if update is not None:
                    self._apply(p, *update, group)
        if sharded:
            self._sharded_steps(sharded)

    def _sharded_steps(self, items: list[tuple[torch.Tensor, dict[str, Any]]]) -> None:
        """FSDP2: each gradient gathered whole to its owner, which keeps the state and computes the update;
        every rank gets its rows of it and ``(apply?, step size)``."""
        owners = self.matrix_owners
        params = [p for p, _ in items]
        fulls = owners.gather(params, [local_tensor(p.grad).to(_compute_dtype(p)) for p in params])
        outputs: list[torch.Tensor] = []
        for (p, group), full in zip(items, fulls):
            if full is None:
                outputs += [placeholder(p.shape, _compute_dtype(p)), placeholder((2,), torch.float64)]
                continue
            update = self._matrix_update(p, full, group)
            apply, step_size = (0.0, 0.0) if update is None else (1.0, update[1])
            outputs += [full.new_zeros(()).expand(p.shape) if update is None else update[0],
                        torch.tensor([apply, step_size], dtype=torch.float64, device=full.device)]
        received = owners.scatter([p for p in params for _ in range(2)], outputs, rows=[True, False] * len(items))
        for index, (p, group) in enumerate(items):
            update, (apply, step_size) = received[2 * index], received[2 * index + 1].tolist()
            if apply:
                self._apply(p, update, step_size, group)

    @staticmethod
    def _apply(p: torch.Tensor, update: torch.Tensor, step_size: float, group: Mapping[str, Any]) -> None:
        """The write on ``p``'s local rows (``update``: those rows)."""
        local = local_tensor(p)
        local.add_(update.to(p.dtype), alpha=-step_size)
        if group["weight_decay"] > 0:
            local.mul_(1 - group["lr"] * group["weight_decay"])

    def _matrix_update(self, p: torch.Tensor, grad: torch.Tensor,
                       group: dict[str, Any]) -> tuple[torch.Tensor, float] | None:
        """Update the state of matrix ``p`` from its whole gradient ``grad`` (compute dtype); the update and its
        step size, or ``None`` at the first step (which only initialises the eigenbases)."""
        state = self.state[p]
        beta1, beta2 = group["betas"]
        shampoo_beta = group["shampoo_beta"] if group["shampoo_beta"] >= 0 else beta2
        on = _preconditioned(p, group["max_precond_dim"])
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(grad, memory_format=torch.contiguous_format)
            state["exp_avg_sq"] = torch.zeros_like(grad, memory_format=torch.contiguous_format)
            factors = []
            for dim, size in enumerate(p.shape):
                if on[dim]:
                    state[f"GG_{dim}"] = torch.zeros(size, size, dtype=grad.dtype, device=p.device)
                factors.append(state.get(f"GG_{dim}"))
            accumulate_factors(grad, factors, shampoo_beta)
            for dim in range(p.dim()):
                if on[dim]:
                    state[f"Q_{dim}"] = initial_eigenbasis(state[f"GG_{dim}"])
            return None  # the first step only initialises the eigenbases (as the reference)
        factors = [state.get(f"GG_{dim}") for dim in range(p.dim())]
        bases = [state.get(f"Q_{dim}") for dim in range(p.dim())]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        state["step"] += 1
        step = state["step"]
        rotated_grad = project(grad, bases)
        exp_avg.lerp_(rotated_grad, 1 - beta1)  # kept in the eigenbasis (re-rotated at each refresh)
        exp_avg_sq.mul_(beta2).addcmul_(rotated_grad, rotated_grad, value=1 - beta2)
        del rotated_grad
        denom = exp_avg_sq.sqrt().add_(group["eps"])
        update = project(torch.div(exp_avg, denom, out=denom), bases, back=True)
        step_size = group["lr"]
        if group["correct_bias"]:
            step_size = step_size * (1 - beta2**step) ** 0.5 / (1 - beta1**step)
        if group["normalize_grads"]:
            update = update / (1e-30 + update.square().mean().sqrt())
        accumulate_factors(grad, factors, shampoo_beta)
        if step % group["precondition_frequency"] == 0:
            sq = exp_avg_sq
            for dim, (factor, basis) in enumerate(zip(factors, bases)):
                if factor is None:
                    continue
                state[f"Q_{dim}"], order = refresh_eigenbasis(factor, basis)
                sq = sq.index_select(dim, order)
            state["exp_avg_sq"] = sq.contiguous()
            rerotate(exp_avg, bases, [state.get(f"Q_{dim}") for dim in range(p.dim())])
        return update, step_size
