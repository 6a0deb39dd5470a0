"""The frame shared by the low-rank optimizers: route each parameter, validate, keep state loadable.

Hidden matrices (role ``hidden_matrix``, see :func:`swift_zoo.optim.group_role`) whose smaller side
exceeds the rank take the low-rank rule of the subclass; every other parameter (embeddings, head,
norms, biases, expert stacks, and matrices too small to gain from a projection) takes the inner
AdamW of :mod:`swift_optim_zoo._inner_adamw`, with the same group's ``lr``, ``betas``, ``eps`` and
``weight_decay``. A parameter of more than two dimensions is handled as ``(shape[0], -1)``.

Low-rank state is kept in ``float32`` (``float64`` for ``float64`` parameters), whatever the
parameter's dtype; the parameter itself is updated in its own dtype.

A routed matrix's step has two parts: :meth:`LowRankHybrid._owner_step` needs the whole gradient and the
state (projection, low-rank moments), and returns a few tensors -- a low-rank factor and a basis, or a
scaling factor, plus the two write coefficients; :meth:`LowRankHybrid._apply_update` writes the parameter
from them, row by row. On one process both run in turn. Under FSDP2 (row-sharded DTensors) the gradients
are gathered to each matrix's owner rank (:class:`~swift_zoo.optim.MatrixOwners`, one ``all_to_all`` for all
matrices), the owner runs :meth:`~LowRankHybrid._owner_step` and keeps the state, and each rank receives only
what its rows need (:meth:`~LowRankHybrid._update_layout`: the row-aligned factor's rows, the other factor
whole) and applies it: ``(m + n) r`` numbers back per matrix instead of ``m n``, and the same arithmetic as
one process row for row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo import _native
from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_optim_zoo._inner_adamw import adamw_state_bytes, inner_adamw_step
from swift_optim_zoo._projection import matrix_view_shape
from swift_zoo.optim import ZooOptimizer, group_role, local_tensor, placeholder, require_betas, require_non_negative
from swift_zoo.params import ParamRole


def compute_dtype(param: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 parameters."""
    return torch.float64 if param.dtype == torch.float64 else torch.float32


def check_adam_hyperparameters(owner: str, *, lr: Any, betas: Any, eps: Any, weight_decay: Any) -> None:
    """The hyperparameters every Adam-family update shares: finite lr, eps, weight_decay >= 0 and betas in [0, 1)."""
    require_non_negative(owner, "lr", lr)
    require_betas(owner, "betas", betas)
    require_non_negative(owner, "eps", eps)
    require_non_negative(owner, "weight_decay", weight_decay)


def row_and_column_scales(grad: torch.Tensor, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A factor broadcast against the ``m x n`` ``grad`` (per row ``(m, 1)``, per column ``(1, n)``, or one
    0-d value) as a row and a column scale vector, ``grad * factor = grad * r c^T``."""
    rows, cols = grad.shape
    if factor.dim() == 0:
        return factor.expand(rows).contiguous(), grad.new_ones(cols)
    if factor.shape[1] == 1:
        return factor.reshape(rows), grad.new_ones(cols)
    return grad.new_ones(rows), factor.reshape(cols)


#: what an owner step returns, per tensor: (shape, dtype, rows) -- ``rows``: split like the parameter's rows
Layout = list[tuple[tuple[int, ...], torch.dtype, bool]]


def write_coefficients(beta: float, alpha: float, like: torch.Tensor) -> torch.Tensor:
    """``(beta, alpha)`` of ``param <- beta param - alpha update`` as a float64 tensor (exact for Python floats)."""
    return torch.tensor([beta, alpha], dtype=torch.float64, device=like.device)


class LowRankHybrid(ZooOptimizer):
    """Base of the low-rank optimizers: routing, the inner AdamW, state accounting and loading.

    Subclasses implement :meth:`_owner_step` (the state update of one routed parameter from its whole
    gradient, 2-D view), :meth:`_update_layout` (what it returns) and :meth:`_apply_update` (the write on
    local rows), and :meth:`_low_rank_state_bytes`; they may override :meth:`_routes_low_rank`.
    """

    name: ClassVar[str] = ""
    distributed = WHOLE_MATRIX

    # --------------------------------------------------------------------- routing
    def _routes_low_rank(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        """Whether ``param`` takes the low-rank rule: a hidden matrix whose smaller side exceeds the rank."""
        if param.dim() < 2 or group_role(group, param) is not ParamRole.HIDDEN_MATRIX:
            return False
        rows, cols = matrix_view_shape(param.shape)
        return int(group["rank"]) < min(rows, cols)

    def _owner_computed(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        return self._routes_low_rank(param, group)

    def _owner_step(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any],
                    index: int) -> list[torch.Tensor]:
        """Update ``state`` from the whole gradient ``grad`` (``rows x cols``, compute dtype) of routed
        parameter number ``index``; return the tensors :meth:`_apply_update` needs (see :meth:`_update_layout`)."""
        raise NotImplementedError

    def _update_layout(self, param: torch.Tensor, group: Mapping[str, Any]) -> Layout:
        """Shape, dtype and row split of each tensor :meth:`_owner_step` returns for ``param``."""
        raise NotImplementedError

    def _apply_update(self, param: torch.Tensor, grad: torch.Tensor, update: list[torch.Tensor],
                      group: Mapping[str, Any]) -> None:
        """Write ``param``'s local rows (``grad``: their gradient, compute dtype, ``local rows x cols``) from
        ``update``: this rank's part of what :meth:`_owner_step` returned."""
        raise NotImplementedError

    def _low_rank_state_bytes(self, rows: int, cols: int, rank: int, itemsize: int,
                              group: Mapping[str, Any]) -> int:
        raise NotImplementedError

    # --------------------------------------------------------------------- contract
    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """State bytes for ``param``: the low-rank formula of the subclass, or the inner AdamW's."""
        if not self._routes_low_rank(param, group):
            return adamw_state_bytes(param)
        rows, cols = matrix_view_shape(param.shape)
        itemsize = torch.empty((), dtype=compute_dtype(param)).element_size()
        return self._low_rank_state_bytes(rows, cols, int(group["rank"]), itemsize, group)

    def _step(self) -> None:
        """One update of every parameter that has a gradient."""
        index = 0
        sharded: list[tuple[torch.Tensor, dict[str, Any], int]] = []
        for group in self.param_groups:
            others = []
            for param in group["params"]:
                index += 1
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    message = f"{self.name}: sparse gradients are not supported"
                    raise RuntimeError(message)
                if not self._routes_low_rank(param, group):
                    others.append(param)
                    continue
                if self.matrix_owners.owner_of(param) is not None:
                    sharded.append((param, group, index))
                    continue
                rows, cols = matrix_view_shape(param.shape)
                grad = param.grad.reshape(rows, cols).to(compute_dtype(param))
                self._apply_update(param, grad, self._owner_step(param, grad, self.state[param], group, index), group)
            self._full_rank_step(others, group)
        if sharded:
            self._sharded_steps(sharded)

    def _sharded_steps(self, items: list[tuple[torch.Tensor, dict[str, Any], int]]) -> None:
        """FSDP2: gradients gathered whole to their owners, owner steps, each rank's part sent back, applied."""
        owners = self.matrix_owners
        params = [param for param, _, _ in items]
        grads = []
        for param, _, _ in items:
            local = local_tensor(param.grad)
            grads.append(local.reshape(local.shape[0], matrix_view_shape(param.shape)[1]).to(compute_dtype(param)))
        sent_params: list[torch.Tensor] = []
        sent: list[torch.Tensor] = []
        by_rows: list[bool] = []
        counts = []
        for (param, group, index), full in zip(items, owners.gather(params, grads)):
            layout = self._update_layout(param, group)
            if full is None:
                sent.extend(placeholder(shape, dtype) for shape, dtype, _ in layout)
            else:
                sent.extend(self._owner_step(param, full, self.state[param], group, index))
            sent_params.extend([param] * len(layout))
            by_rows.extend(rows for _, _, rows in layout)
            counts.append(len(layout))
        received = owners.scatter(sent_params, sent, rows=by_rows)
        offset = 0
        for (param, group, _), grad, count in zip(items, grads, counts):
            if grad.numel():
                self._apply_update(param, grad, received[offset:offset + count], group)
            offset += count

    def _full_rank_step(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        """The parameters the method does not act on: torch's AdamW with the group's hyperparameters."""
        inner_adamw_step(self, params, group)

    # --------------------------------------------------------------------- helpers
    @staticmethod
    def _coefficients(step_size: float, decay: float, decay_first: bool) -> tuple[float, float]:
        """``(beta, alpha)`` with ``param <- beta * param - alpha * update``.

        Decay first: ``(1 - decay) p - s u``; decay after the update: ``(1 - decay)(p - s u)``.
        """
        keep = 1.0 - decay
        return keep, step_size if decay_first else step_size * keep

    @staticmethod
    def _writable_view(param: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
        """A ``shape`` view of ``param`` to update in place, or a ``dtype`` copy (``True``: copy back)."""
        if param.dtype == dtype and param.is_contiguous():
            return param.view(shape), False
        return param.detach().reshape(shape).to(dtype, copy=True), True

    def _apply_back_projected(self, param: torch.Tensor, low_rank: torch.Tensor, basis: torch.Tensor, side: str,
                              *, beta: float, alpha: float) -> None:
        """``param <- beta param - alpha back(low_rank)`` in one ``addmm`` (no full-size temporary), on the local
        rows of ``param``: ``low_rank`` (right) or ``basis`` (left) holds just those rows."""
        param = local_tensor(param)
        rows = low_rank.shape[0] if side == "right" else basis.shape[0]
        cols = basis.shape[0] if side == "right" else low_rank.shape[1]
        target, copied = self._writable_view(param, torch.Size((rows, cols)), low_rank.dtype)
        left, right = (low_rank, basis.mT) if side == "right" else (basis, low_rank)
        target.addmm_(left, right, beta=beta, alpha=-alpha)
        if copied:
            param.copy_(target.view(param.shape))

    def _apply_scaled(self, param: torch.Tensor, grad: torch.Tensor, factor: torch.Tensor, *, beta: float,
                      alpha: float, fused: bool = False) -> None:
        """``param <- beta param - alpha (grad * factor)``, ``factor`` broadcast (one fused pass), on the local
        rows of ``param`` (``grad`` and a per-row ``factor``: those rows). ``fused``: the C write of
        :func:`~swift_optim_zoo._native.factored_write` where it applies (a contiguous float32 CPU parameter),
        torch ops otherwise."""
        param = local_tensor(param)
        if fused and param.is_contiguous():
            row_scale, col_scale = row_and_column_scales(grad, factor)
            if _native.factored_write(param.view(grad.shape), grad, row_scale * alpha, col_scale, decay=beta,
                                      exp_avg=None, beta1=0.0):
                return
        target, copied = self._writable_view(param, grad.shape, grad.dtype)
        if beta != 1.0:
            target.mul_(beta)
        target.addcmul_(grad, factor, value=-alpha)
        if copied:
            param.copy_(target.view(param.shape))
