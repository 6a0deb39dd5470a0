"""Masked reductions: sums, means and whitening that ignore padded positions exactly."""

from __future__ import annotations

import torch


def _as_bool(mask: torch.Tensor) -> torch.Tensor:
    return mask if mask.dtype == torch.bool else mask != 0


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """Sum of ``x`` where ``mask`` is true; NaN or inf at masked-out positions do not leak."""
    zeros = torch.zeros((), dtype=x.dtype, device=x.device)
    kept = torch.where(_as_bool(mask), x, zeros)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_count(mask: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    m = _as_bool(mask)
    return m.sum() if dim is None else m.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is true; 0 where nothing is kept."""
    count = masked_count(mask, dim).to(x.dtype)
    return masked_sum(x, mask, dim) / torch.clamp(count, min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, *, unbiased: bool = True) -> torch.Tensor:
    """Variance of the kept entries of ``x`` (Bessel-corrected when ``unbiased``)."""
    mean = masked_mean(x, mask)
    count = masked_count(mask).to(x.dtype)
    sq = masked_sum((x - mean) ** 2, mask)
    denom = count - 1 if unbiased else count
    return sq / torch.clamp(denom, min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the kept entries; masked entries come back as 0."""
    mean = masked_mean(x, mask)
    var = masked_var(x, mask)
    white = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        white = white + mean
    return torch.where(_as_bool(mask), white, torch.zeros((), dtype=x.dtype, device=x.device))


class _ZeroGradientWhere(torch.autograd.Function):
    """Identity forward; backward writes exactly 0 where ``ignored`` is true."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, ignored: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ignored)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (ignored,) = ctx.saved_tensors
        return grad.masked_fill(ignored, 0), None


def zero_gradient_where(x: torch.Tensor, ignored: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged, but its gradient is exactly 0 where ``ignored`` (bool, broadcastable to ``x``) is true.

    The reduction excludes ignored units with ``torch.where``, which keeps NaN or Inf there out of the
    value; the gradient is another matter: an op upstream of the mask (``log_softmax`` of a row of NaN
    logits) multiplies its zero incoming gradient by NaN. Applied to an input before any arithmetic, this
    makes the gradient at ignored positions exactly 0 whatever they hold, at the cost of one masked fill
    of the gradient (no copy in the forward pass).
    """
    return _ZeroGradientWhere.apply(x, ignored)
