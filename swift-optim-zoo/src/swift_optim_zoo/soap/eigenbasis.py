"""Shampoo factors and their eigenbases for SOAP: rotations into and out of the eigenbasis, refreshes."""

from __future__ import annotations

import torch


def project(tensor: torch.Tensor, bases: list[torch.Tensor | None], *, back: bool = False) -> torch.Tensor:
    r"""``tensor`` rotated into the eigenbasis (``back=False``: :math:`Q_L^T G Q_R`) or out of it.

    ``bases[i]`` is the eigenbasis of dimension ``i``, or ``None`` for a dimension left
    unrotated. Each dimension is contracted in turn and moved last, so the order comes back.
    """
    if tensor.dim() == 2 and bases[0] is not None and bases[1] is not None:  # a matrix: two plain products
        left, right = bases
        return left @ tensor @ right.T if back else left.T @ tensor @ right
    for basis in bases:
        if basis is None:
            tensor = tensor.movedim(0, -1)
        else:
            tensor = torch.tensordot(tensor, basis, dims=([0], [1 if back else 0]))
    return tensor


def accumulate_factors(grad: torch.Tensor, factors: list[torch.Tensor | None], beta: float) -> None:
    r"""``L_i <- beta L_i + (1 - beta) G_(i) G_(i)^T`` for each preconditioned dimension ``i``."""
    for dim, factor in enumerate(factors):
        if factor is None:
            continue
        if grad.dim() == 2:  # the product accumulated in place: no [d, d] temporary, one pass over the factor
            side = grad if dim == 0 else grad.T
            factor.addmm_(side, side.T, beta=beta, alpha=1 - beta)
            continue
        others = [d for d in range(grad.dim()) if d != dim]
        outer = torch.tensordot(grad, grad, dims=(others, others))
        factor.lerp_(outer, 1 - beta)


def initial_eigenbasis(factor: torch.Tensor) -> torch.Tensor:
    """Eigenvectors of ``factor``, largest eigenvalue first (``eigh``; retried in float64 on failure)."""
    try:
        _, vectors = torch.linalg.eigh(factor)
    except RuntimeError:
        _, vectors = torch.linalg.eigh(factor.double())
        vectors = vectors.to(factor.dtype)
    return torch.flip(vectors, dims=[1]).contiguous()


def refresh_eigenbasis(factor: torch.Tensor, basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One power-iteration step plus QR from the current basis: ``(new basis, column order used)``.

    The columns are first sorted by the estimated eigenvalues ``diag(Q^T L Q)`` (descending); the
    caller permutes the second-moment estimate the same way along this dimension.
    """
    product = factor @ basis  # one product serves both: diag(Q^T L Q) = column sums of Q * (L Q), and L Q[:, order]
    estimated = (basis * product).sum(dim=0)
    order = torch.argsort(estimated, descending=True)
    q, _ = torch.linalg.qr(product[:, order])
    return q.contiguous(), order


def rerotate(tensor: torch.Tensor, old_bases: list[torch.Tensor | None], new_bases: list[torch.Tensor | None]) -> None:
    """``tensor`` (held in the eigenbasis ``old_bases``) moved in place into ``new_bases``: back with the
    old bases, forward with the new ones (SOAP's first moment at an eigenbasis refresh)."""
    tensor.copy_(project(project(tensor, old_bases, back=True), new_bases))
