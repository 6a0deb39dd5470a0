"""GaLore's projector bookkeeping: when to refresh, where the basis lives, how the update comes back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from swift_optim_zoo._projection import (
    matrix_view_shape,
    mix_seed,
    project,
    projection_side,
    raw_svd_basis,
    subspace_basis,
)
from swift_optim_zoo.galore._hybrid import Layout, LowRankHybrid, compute_dtype
from swift_zoo.optim import require_choice, require_int, require_positive

PROJ_METHODS = ("randomized", "svd")
MAX_RANK = 1 << 16  # a projection rank (or oversampling) past 65536 is a typo, not a low-rank method
MAX_STEPS = 10**9
MAX_POWER_ITERATIONS = 64  # each is two matmuls with the whole gradient; 1-2 are the useful range


def check_projection_kwargs(owner: str, *, rank: int, update_proj_gap: int, scale: float, proj_method: str,
                            oversampling: int, power_iterations: int) -> None:
    require_int(owner, "rank", rank, low=1, high=MAX_RANK)
    require_int(owner, "update_proj_gap", update_proj_gap, low=1, high=MAX_STEPS)
    require_positive(owner, "scale", scale)
    require_choice(owner, "proj_method", proj_method, PROJ_METHODS)
    require_int(owner, "oversampling", oversampling, low=0, high=MAX_RANK)
    require_int(owner, "power_iterations", power_iterations, low=0, high=MAX_POWER_ITERATIONS)


class GaLoreBase(LowRankHybrid):
    """Projection of each routed gradient on its leading singular subspace, refreshed every
    ``update_proj_gap`` steps from the current gradient (state keys ``step``, ``seed``, ``basis``)."""

    # --------------------------------------------------------------------- basis storage (Q-GaLore overrides)
    def _stored_basis(self, state: Mapping[str, Any], dtype: torch.dtype) -> torch.Tensor | None:
        basis = state.get("basis")
        return None if basis is None else basis.to(dtype)

    def _store_basis(self, state: dict[str, Any], basis: torch.Tensor, group: Mapping[str, Any]) -> None:
        state["basis"] = basis

    def _refresh_due(self, state: Mapping[str, Any], group: Mapping[str, Any]) -> bool:
        return "basis" not in state or state["step"] % int(group["update_proj_gap"]) == 0

    def _after_refresh(self, state: dict[str, Any], previous: torch.Tensor | None, basis: torch.Tensor,
                       group: Mapping[str, Any]) -> None:
        """Hook for layer-adaptive schedules (Q-GaLore)."""

    # --------------------------------------------------------------------- the projection
    def _projected(self, grad: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any],
                   index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        """``(low-rank gradient, basis, side)``, refreshing the basis when due."""
        rows, cols = grad.shape
        side = projection_side(rows, cols)
        rank = int(group["rank"])
        if "step" not in state:
            state["step"] = 0
            state["seed"] = mix_seed(int(group.get("seed", 0)), index)
        previous = self._stored_basis(state, grad.dtype)
        if self._refresh_due(state, group):
            if group.get("galore_torch_compat", False):  # galore-torch: exact SVD, LAPACK's signs
                basis = raw_svd_basis(grad, rank, side)
            else:
                basis = subspace_basis(
                    grad, rank, side, group["proj_method"], seed=mix_seed(state["seed"], state["step"]),
                    previous=previous, oversampling=int(group["oversampling"]),
                    power_iterations=int(group["power_iterations"]),
                )
            self._store_basis(state, basis, group)
            self._after_refresh(state, previous, basis, group)
            basis = self._stored_basis(state, grad.dtype)
        else:
            basis = previous
        return project(grad, basis, side), basis, side

    @staticmethod
    def _low_rank_shape(rows: int, cols: int, rank: int) -> tuple[int, int]:
        return (rows, rank) if projection_side(rows, cols) == "right" else (rank, cols)

    # --------------------------------------------------------------------- the write
    def _update_layout(self, param: torch.Tensor, group: Mapping[str, Any]) -> Layout:
        """``[low-rank update, basis, (beta, alpha)]``: on the right side (``m >= n``) the ``m x r`` update
        is split by rows and every rank gets the ``n x r`` basis; on the left the ``m x r`` basis is split and
        every rank gets the ``r x n`` update."""
        rows, cols = matrix_view_shape(param.shape)
        rank = int(group["rank"])
        dtype = compute_dtype(param)
        right = projection_side(rows, cols) == "right"
        return [(self._low_rank_shape(rows, cols, rank), dtype, right), ((min(rows, cols), rank), dtype, not right),
                ((2,), torch.float64, False)]

    def _apply_update(self, param: torch.Tensor, grad: torch.Tensor, update: list[torch.Tensor],
                      group: Mapping[str, Any]) -> None:
        low_rank, basis, coefficients = update
        beta, alpha = coefficients.tolist()
        side = projection_side(*matrix_view_shape(param.shape))
        self._apply_back_projected(param, low_rank, basis, side, beta=beta, alpha=alpha)
