"""PSGD Kron (Xi-Lin Li, "Preconditioned Stochastic Gradient Descent", arXiv:1512.04202 and arXiv:1809.10232; the
Kron form of kron_torch, heavyball and pytorch_optimizer)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_optim_zoo._projection import mix_seed
from swift_optim_zoo._stepping import stepped_params
from swift_optim_zoo.kron import preconditioner
from swift_zoo import DistributedCapability
from swift_zoo.optim import (
    ZooOptimizer,
    local_tensor,
    placeholder,
    require_in_range,
    require_int,
    require_non_negative,
)

EPS = torch.finfo(torch.bfloat16).tiny


def update_probability(step: int, *, max_prob: float = 1.0, min_prob: float = 0.03, decay: float = 0.001,
                       flat_start: int = 500) -> float:
    """How often the preconditioner is fitted: every step for the first ``flat_start`` steps, then exponentially
    less often down to ``min_prob`` (kron_torch's schedule, which pytorch_optimizer and heavyball share)."""
    return min(max_prob, max(min_prob, max_prob * math.exp(-decay * (step - flat_start))))


class Kron(ZooOptimizer):
    r"""PSGD Kron: momentum preconditioned by a Kronecker-factored :math:`P = \bigotimes_i Q_i^\top Q_i`, fitted
    online to whiten the gradient.

    Per parameter, with :math:`m` the bias-corrected momentum of the gradient:

    .. math::
        m \leftarrow \beta m + (1-\beta) g,\quad \hat m = m/(1-\beta^t),\quad
        Q_i \leftarrow Q_i - \eta_Q\,\frac{\mathrm{triu}(A_{(i)}A_{(i)}^\top - B_{(i)}B_{(i)}^\top)}
        {\lVert A_{(i)}A_{(i)}^\top + B_{(i)}B_{(i)}^\top\rVert}\,Q_i,\\
        u = P\hat m,\quad u \leftarrow u\,\min\big(1, 1.1/\mathrm{RMS}(u)\big),\qquad
        \theta \leftarrow \theta - \eta\,(u + \lambda\theta)

    with :math:`A = \hat m \times_i Q_i` and :math:`B = v \times_i Q_i^{-\top}` over every dimension, :math:`v` a
    Gaussian probe (:mod:`swift_optim_zoo.kron.preconditioner`). A dimension larger than
    ``max_size_triangular`` (or any dimension of a tensor with fewer than ``min_ndim_triangular`` dimensions)
    gets a diagonal factor. The preconditioner is fitted with probability schedule :func:`update_probability`
    (every step for 500 steps, then decaying to 3%), deterministically every ``1/p`` steps; the factors are
    rebalanced every 100 fits (this leaves :math:`P` unchanged). Weight decay is decoupled and applied to tensors
    of 2 dimensions or more, as the references.

    The probe :math:`v` is drawn from a generator seeded by ``(seed, parameter index, step)``, so a resumed run is
    the same as an uninterrupted one; ``seed=None`` draws from torch's global generator as kron_torch and
    pytorch_optimizer do (which the reference comparison uses). The factors need whole tensors: under FSDP2 the
    momentum stays sharded like the parameter, each tensor's debiased momentum goes (float32) to its owner rank,
    which keeps the factors, draws the probe (the same one: it is seeded by the parameter's index, not the rank) and
    preconditions; every rank gets its rows of the update back (in the parameter's dtype) and applies the decay and
    the step on them. With ``seed=None`` each owner draws from its own global generator, so a sharded run is not a
    single process's.

    Defaults (kron_torch's and pytorch_optimizer 4.1's): ``lr=1e-3, momentum=0.9, weight_decay=0,
    precondition_lr=0.1, max_size_triangular=8192, min_ndim_triangular=2``. State: ``momentum_buffer``
    (parameter dtype), the float32 factors ``Q0``, ``Q1``, ... (``d_i^2`` numbers each, ``d_i`` if diagonal),
    ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: kron
          optimizer_kwargs: {lr: 3.0e-4, weight_decay: 0.1}
    """

    name = "kron"
    distributed: ClassVar[DistributedCapability] = WHOLE_MATRIX
    sharded_state_keys = frozenset({"momentum_buffer"})

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
                 precondition_lr: float = 0.1, max_size_triangular: int = 8192, min_ndim_triangular: int = 2,
                 seed: int | None = 0) -> None:
        owner = f"optimizer {self.name!r}"
        defaults = {
            "lr": require_non_negative(owner, "lr", lr),
            "momentum": require_in_range(owner, "momentum", momentum, 0.0, 1.0, high_inclusive=False),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "precondition_lr": require_non_negative(owner, "precondition_lr", precondition_lr),
            "max_size_triangular": require_int(owner, "max_size_triangular", max_size_triangular, low=0,
                                               high=65536),
            "min_ndim_triangular": require_int(owner, "min_ndim_triangular", min_ndim_triangular, low=1, high=16),
            "seed": None if seed is None else require_int(owner, "seed", seed, low=0, high=2**63 - 1),
            "kron_step": 0, "fit_counter": 0, "fits": 0,
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for the conformance suite's small problems."""
        return {"lr": 1e-2}

    def _dense(self, param: torch.Tensor, size: int, group: Mapping[str, Any]) -> bool:
        return 1 < size <= group["max_size_triangular"] and param.dim() >= group["min_ndim_triangular"]

    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """The momentum (parameter dtype) plus float32 factors: ``d^2`` per dense dimension, ``d`` per diagonal."""
        factors = sum(size * size if self._dense(param, size, group) else size for size in param.shape) or 1
        return param.numel() * param.element_size() + 4 * factors

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        """The momentum (sharded like the parameter); the factors where the tensor is computed (its owner)."""
        state: dict[str, Any] = {"momentum_buffer": torch.zeros_like(param)}
        if not self.matrix_owners.owns(param):
            return state
        device = local_tensor(param).device
        for dim, size in enumerate(param.shape or (1,)):
            dense = self._dense(param, size, group)
            state[f"Q{dim}"] = (torch.eye(size, dtype=torch.float32, device=device) if dense
                                else torch.ones(size, dtype=torch.float32, device=device))
        return state

    def _owner_computed(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        return True  # every tensor: the RMS clip and a diagonal factor's fit need the whole of it

    def _step(self) -> None:
        first = self.param_groups[0]
        probability = update_probability(first["kron_step"])
        counter = first["fit_counter"] + 1
        fit = counter >= 1 / probability
        fits = first["fits"] + int(fit)
        rebalance = fit and fits % 100 == 0
        for group in self.param_groups:
            group.update({"kron_step": first["kron_step"] + 1, "fit_counter": 0 if fit else counter, "fits": fits})
        index = 0
        sharded: list[tuple[torch.Tensor, torch.Tensor, int, dict[str, Any]]] = []
        for group in self.param_groups:
            beta = group["momentum"]
            for param, state in stepped_params(self, group, lambda p, g=group: self._new_state(p, g)):
                index += 1
                buffer = local_tensor(state["momentum_buffer"])
                buffer.mul_(beta).add_(local_tensor(param.grad), alpha=1 - beta)
                debiased = (buffer / (1 - beta ** state["step"])).float()
                if self.matrix_owners.owner_of(param) is not None:
                    sharded.append((param, debiased, index, group))
                    continue
                update = self._preconditioned(param, debiased, state, group, index, fit=fit, rebalance=rebalance)
                self._apply(param, update, group)
        if sharded:
            self._sharded_updates(sharded, fit=fit, rebalance=rebalance)

    def _preconditioned(self, param: torch.Tensor, debiased: torch.Tensor, state: dict[str, Any],
                        group: Mapping[str, Any], index: int, *, fit: bool, rebalance: bool) -> torch.Tensor:
        """The update of a whole tensor from its debiased momentum (float32): the factors fitted (when due) and
        applied, the RMS clipped to 1.1; in the parameter's shape and dtype."""
        shaped = debiased.reshape(param.shape or (1,))
        factors = [state[f"Q{dim}"] for dim in range(shaped.dim())]
        if rebalance and param.dim() > 1:
            preconditioner.balance(factors)
        if fit:
            preconditioner.fit(factors, shaped, self._probe(shaped, group, index, state["step"]),
                               group["precondition_lr"], EPS)
        update = preconditioner.precondition(factors, shaped)
        update = update * torch.clamp(1.1 / (update.square().mean().sqrt() + 1e-6), max=1.0)
        return update.reshape(param.shape).to(param.dtype)

    @staticmethod
    def _apply(param: torch.Tensor, update: torch.Tensor, group: Mapping[str, Any]) -> None:
        """Decoupled decay (tensors of 2 dimensions or more), then the step (the local rows under FSDP2)."""
        local = local_tensor(param)
        if group["weight_decay"] != 0 and param.dim() >= 2:
            update = update + local * group["weight_decay"]
        local.sub_(update * group["lr"])

    def _sharded_updates(self, items: list[tuple[torch.Tensor, torch.Tensor, int, dict[str, Any]]], *, fit: bool,
                         rebalance: bool) -> None:
        """FSDP2: each debiased momentum gathered whole to its owner, which preconditions it; rows sent back."""
        owners = self.matrix_owners
        params = [param for param, _, _, _ in items]
        fulls = owners.gather(params, [debiased for _, debiased, _, _ in items])
        outputs = [
            placeholder(param.shape, param.dtype) if full is None
            else self._preconditioned(param, full, self.state[param], group, index, fit=fit, rebalance=rebalance)
            for (param, _, index, group), full in zip(items, fulls)
        ]
        for (param, _, _, group), rows in zip(items, owners.scatter(params, outputs)):
            self._apply(param, rows, group)

    @staticmethod
    def _probe(like: torch.Tensor, group: Mapping[str, Any], index: int, step: int) -> torch.Tensor:
        if group["seed"] is None:
            return torch.randn_like(like)
        generator = torch.Generator(device=like.device).manual_seed(mix_seed(group["seed"], index, step))
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
