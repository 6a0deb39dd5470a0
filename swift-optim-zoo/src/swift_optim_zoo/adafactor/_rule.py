"""The Adafactor update of one tensor (Shazeer & Stern 2018, arXiv:1804.04235), as transformers computes it.

Shared by :class:`~swift_optim_zoo.adafactor.Adafactor` and GaLore-Adafactor (on the low-rank gradient).
"""

from __future__ import annotations

import math
from typing import Any

import torch


def rms(tensor: torch.Tensor) -> torch.Tensor:
    """Root mean square of ``tensor``'s entries."""
    return tensor.norm(2) / math.sqrt(tensor.numel())


def init_adafactor_state(state: dict[str, Any], shape: torch.Size | tuple[int, ...], *, dtype: torch.dtype,
                         device: torch.device, use_first_moment: bool) -> None:
    """Zero second-moment statistics for a tensor of ``shape``: row and column means if it has 2 or more
    dimensions (factored over the last two), a full tensor otherwise; plus ``exp_avg`` with momentum."""
    shape = tuple(shape)
    if len(shape) >= 2:
        state["exp_avg_sq_row"] = torch.zeros(shape[:-1], dtype=dtype, device=device)
        state["exp_avg_sq_col"] = torch.zeros(shape[:-2] + shape[-1:], dtype=dtype, device=device)
    else:
        state["exp_avg_sq"] = torch.zeros(shape, dtype=dtype, device=device)
    if use_first_moment:
        state["exp_avg"] = torch.zeros(shape, dtype=dtype, device=device)


def adafactor_state_elements(shape: torch.Size | tuple[int, ...], *, use_first_moment: bool) -> int:
    """Number of state entries :func:`init_adafactor_state` allocates."""
    shape = tuple(shape)
    numel = math.prod(shape)
    if len(shape) >= 2:
        count = math.prod(shape[:-1]) + math.prod(shape[:-2]) * shape[-1]
    else:
        count = numel
    return count + (numel if use_first_moment else 0)


def update_factored_statistics(grad: torch.Tensor, row: torch.Tensor, col: torch.Tensor, *, beta2t: float,
                               eps1: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`update_statistics_from_means` with the means of ``grad**2`` over columns and rows
    (one full-size square serves both; ``torch.linalg.vector_norm`` over dim -2 is ~30x slower on
    CPU than a sum of squares)."""
    squared = grad * grad
    return update_statistics_from_means(row, col, squared.mean(dim=-1), squared.mean(dim=-2), beta2t=beta2t, eps1=eps1)


def update_statistics_from_means(row: torch.Tensor, col: torch.Tensor, row_mean: torch.Tensor, col_mean: torch.Tensor,
                                 *, beta2t: float, eps1: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Update the row and column statistics ``R``, ``C`` of a (batch of) matrices in place, from
    ``row_mean`` = :math:`\mathrm{mean}_{\text{cols}}(g^2)` and ``col_mean`` = :math:`\mathrm{mean}_{\text{rows}}(g^2)`
    (both overwritten):

    .. math::
        R \leftarrow \hat\beta_{2,t} R + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{cols}}(g^2+\epsilon_1),\quad
        C \leftarrow \hat\beta_{2,t} C + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{rows}}(g^2+\epsilon_1)

    Returns ``(r, c)`` with :math:`1/\sqrt{\hat V} = r\,c^\top`: ``r = (R / mean(R))^{-1/2}``, ``c = C^{-1/2}``
    (``mean(g^2 + eps1) = mean(g^2) + eps1``).
    """
    row.mul_(beta2t).add_(row_mean.add_(eps1), alpha=1.0 - beta2t)
    col.mul_(beta2t).add_(col_mean.add_(eps1), alpha=1.0 - beta2t)
    return (row / row.mean(dim=-1, keepdim=True)).rsqrt_(), col.rsqrt()


def adafactor_update(
    grad: torch.Tensor,
    state: dict[str, Any],
    *,
    step: int,
    lr: float,
    eps1: float,
    clip_threshold: float,
    decay_rate: float,
    beta1: float | None,
) -> torch.Tensor:
    r"""The update ``u`` (to subtract from the parameter), updating ``state`` in place.

    .. math::
        \hat\beta_{2,t} = 1 - t^{c},\quad
        V = \hat\beta_{2,t} V + (1-\hat\beta_{2,t})(g^2 + \epsilon_1)\ \text{(factored: row and column means)},\\
        \hat V = \frac{R\,C^\top}{\operatorname{mean}(R)},\quad
        u = \frac{g/\sqrt{\hat V}}{\max(1, \operatorname{RMS}(g/\sqrt{\hat V})/d)}\,\eta,\quad
        u \leftarrow \beta_1 m + (1-\beta_1) u \text{ if } \beta_1

    ``step`` is 1 at the first update (``c`` = ``decay_rate`` = -0.8, ``d`` = ``clip_threshold``).
    """
    beta2t = 1.0 - math.pow(step, decay_rate)
    if "exp_avg_sq_row" in state:
        row_factor, col_factor = update_factored_statistics(grad, state["exp_avg_sq_row"], state["exp_avg_sq_col"],
                                                            beta2t=beta2t, eps1=eps1)
        update = grad * row_factor.unsqueeze(-1)
        update.mul_(col_factor.unsqueeze(-2))
    else:
        second = state["exp_avg_sq"]
        second.mul_(beta2t).addcmul_(grad, grad, value=1.0 - beta2t).add_(eps1 * (1.0 - beta2t))
        update = second.rsqrt() * grad
    # RMS clipping and the step size in one scalar multiply
    update.mul_(lr / (rms(update) / clip_threshold).clamp(min=1.0))
    if beta1 is not None:
        first = state["exp_avg"]
        first.mul_(beta1).add_(update, alpha=1.0 - beta1)
        update = first.clone()
    return update
