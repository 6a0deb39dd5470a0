"""The Kronecker-factored preconditioner of PSGD (Xi-Lin Li, arXiv:1512.04202, "Preconditioner on matrix Lie group
for SGD", arXiv:1809.10232): one factor per tensor dimension, upper-triangular ``Q_i`` (or a diagonal vector for
dimensions too large), ``P = (Q_1^T Q_1) x ... x (Q_k^T Q_k)``.

Mode products: ``X x_i M`` multiplies dimension ``i`` of ``X`` by ``M`` (``M X_(i)`` on the mode-``i`` unfolding).
Pure functions of whole tensors: a factor sees every index of its dimension.
"""

from __future__ import annotations

import torch


def mode_product(x: torch.Tensor, factor: torch.Tensor, dim: int) -> torch.Tensor:
    """``x x_dim factor``: a matrix applied to dimension ``dim``, or a vector scaling it (diagonal factor)."""
    if factor.dim() == 1:
        shape = [1] * x.dim()
        shape[dim] = -1
        return x * factor.view(shape)
    return torch.movedim(torch.tensordot(factor, x, dims=([1], [dim])), 0, dim)


def inverse_transpose_product(x: torch.Tensor, factor: torch.Tensor, dim: int) -> torch.Tensor:
    """``x x_dim Q^{-T}`` by a triangular solve (``Q`` upper triangular), or a division for a diagonal factor."""
    if factor.dim() == 1:
        shape = [1] * x.dim()
        shape[dim] = -1
        return x / factor.view(shape)
    unfolded = torch.movedim(x, dim, 0)
    solved = torch.linalg.solve_triangular(factor.mT, unfolded.reshape(unfolded.shape[0], -1), upper=False)
    return torch.movedim(solved.reshape(unfolded.shape), 0, dim)


def gram(x: torch.Tensor, dim: int, diagonal: bool) -> torch.Tensor:
    """``X_(dim) X_(dim)^T`` (or only its diagonal): the second moment of ``x`` along ``dim``."""
    unfolded = torch.movedim(x, dim, 0).reshape(x.shape[dim], -1)
    return (unfolded * unfolded).sum(dim=1) if diagonal else unfolded @ unfolded.mT


def spectral_norm_lower_bound(a: torch.Tensor) -> torch.Tensor:
    """A cheap lower bound of ``||a||_2`` for a symmetric PSD matrix: ``||x a|| / ||x||`` with ``x`` the row (or
    column) of largest norm, after scaling ``a`` by its largest entry (Li's PSGD)."""
    scale = a.abs().max()
    if float(scale) == 0.0:
        return scale
    a = a / scale
    squares = a * a
    column_sums, row_sums = squares.sum(dim=0), squares.sum(dim=1)
    if float(column_sums.max()) > float(row_sums.max()):
        x = a[:, int(column_sums.argmax())] @ a
        bound = torch.linalg.vector_norm((x / torch.linalg.vector_norm(x)) @ a.mT)
    else:
        x = a @ a[int(row_sums.argmax())]
        bound = torch.linalg.vector_norm(a.mT @ (x / torch.linalg.vector_norm(x)))
    return scale * bound


def precondition(factors: list[torch.Tensor], grad: torch.Tensor) -> torch.Tensor:
    """``P g = g x_1 Q_1^T Q_1 x_2 ... x_k Q_k^T Q_k``."""
    out = grad
    for dim, factor in enumerate(factors):
        if factor.dim() == 1:
            out = mode_product(out, factor * factor, dim)
        else:
            out = mode_product(out, factor.mT @ factor, dim)
    return out


def fit(factors: list[torch.Tensor], grad: torch.Tensor, noise: torch.Tensor, lr: float, eps: float) -> None:
    """One step of PSGD's fit of ``Q`` on the Lie group, in place, from a (gradient, probe) pair: with
    ``A = g x_i Q_i`` and ``B = v x_i Q_i^{-T}`` over every dimension,
    ``Q_i <- Q_i - lr * triu(A_(i)A_(i)^T - B_(i)B_(i)^T) / ||A_(i)A_(i)^T + B_(i)B_(i)^T|| * Q_i``
    (the norm a lower bound of the spectral norm; for a diagonal factor the largest entry, element-wise)."""
    a, b = grad, noise
    for dim, factor in enumerate(factors):
        a = mode_product(a, factor, dim)
        b = inverse_transpose_product(b, factor, dim)
    for dim, factor in enumerate(factors):
        diagonal = factor.dim() == 1
        term_a, term_b = gram(a, dim, diagonal), gram(b, dim, diagonal)
        difference = (term_a - term_b) * lr
        if diagonal:
            factor.sub_(difference * factor / ((term_a + term_b).abs().max() + eps))
        else:
            step = torch.triu(difference) / (spectral_norm_lower_bound(term_a + term_b) + eps)
            factor.sub_(step @ factor)


def balance(factors: list[torch.Tensor]) -> None:
    """Give every factor the geometric mean of their max-norms (``P`` unchanged; keeps the factors' scales close)."""
    if len(factors) < 2:
        return
    norms = torch.stack([factor.abs().max() for factor in factors])
    target = norms.prod() ** (1 / len(factors))
    for factor, norm in zip(factors, norms):
        factor.mul_(target / norm)
