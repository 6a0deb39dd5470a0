"""Per-token and per-sequence log-probabilities of labels under logits: the currency of
sequence-level losses (DPO, SimPO, KTO, GRPO...).

Memory: a plain ``log_softmax(logits).gather(label)`` keeps a float32 ``[B, T, V]`` log-softmax
for the backward pass and builds two more ``[B, T, V]`` tensors in it. :func:`token_logps` runs a
chunked autograd function instead: the forward pass visits the scored positions a few hundred
rows at a time and keeps only one float32 ``logsumexp`` per position; the backward pass recomputes
the softmax of each chunk and writes ``grad * (onehot(label) - softmax)`` straight into the
gradient of the logits. Ignored positions are never read and get exactly zero gradient. At no
point does more than one chunk of float32 ``[rows, V]`` exist besides the logits and their
gradient.

:func:`linear_token_logps` / :func:`linear_sequence_logps` go one step further for a model whose
logits are ``hidden @ W^T (+ b)``: they take the final hidden states and the LM head, so neither
the ``[B, T, V]`` logits nor their gradient ever exist; each chunk's logits are computed in the
forward pass and recomputed in the backward pass.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from swift_zoo.ops._shift import IGNORE_INDEX, shift_labels

#: Bytes of float32 logits one chunk may hold (the default chunk size is derived from it).
CHUNK_BYTES = 32 * 2**20
#: The fewest rows a chunk holds, whatever the vocabulary size.
MIN_CHUNK_ROWS = 32


class SequenceLogps(NamedTuple):
    """Summed log-probabilities of each sequence's counted labels, and how many were counted."""

    logps: torch.Tensor  # [B], float32 (float64 for float64 logits)
    counts: torch.Tensor  # [B], int64

    @property
    def mean_logps(self) -> torch.Tensor:
        """Length-averaged log-probabilities, ``logps / counts`` (0 for an empty sequence)."""
        return self.logps / torch.clamp(self.counts, min=1).to(self.logps.dtype)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _logsumexp_in_place(chunk: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over dim 1 of a scratch ``[rows, V]`` tensor, overwriting it (no second copy)."""
    top = chunk.amax(dim=1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return (top + chunk.sub_(top).exp_().sum(dim=1, keepdim=True).log()).squeeze(1)


def default_chunk_rows(vocab_size: int, *, chunk_bytes: int = CHUNK_BYTES, min_rows: int = MIN_CHUNK_ROWS) -> int:
    """Rows per chunk so that one float32 ``[rows, vocab_size]`` block fits ``chunk_bytes``."""
    return max(min_rows, chunk_bytes // (4 * max(vocab_size, 1)))


def _check_targets(function: str, targets: torch.Tensor, vocab_size: int, ignore_index: int) -> None:
    """Scored labels must be token ids in ``[0, V)``: torch would fail inside ``gather`` (on CUDA, a device assert)."""
    bad = (targets < 0) | (targets >= vocab_size)
    if targets.numel() and bool(bad.any()):
        value = targets[bad][0].item()
        message = (
            f"{function}: labels must be token ids in [0, {vocab_size}) or ignore_index {ignore_index}; found "
            f"{int(bad.sum())} outside, e.g. {value}"
        )
        raise ValueError(message)


class _ChunkedTokenLogps(torch.autograd.Function):
    """``out[b, t] = logits[b, t, y] - logsumexp(logits[b, t])`` at the positions ``(rows_b, rows_t)``.

    Forward keeps only ``logsumexp`` per scored position; backward recomputes the softmax per chunk.
    """

    @staticmethod
    def forward(ctx, logits, rows_b, rows_t, targets, chunk_rows):
        compute = _compute_dtype(logits.dtype)
        count = rows_b.numel()
        lse = torch.empty(count, dtype=compute, device=logits.device)
        picked = torch.empty(count, dtype=compute, device=logits.device)
        for start in range(0, count, chunk_rows):
            part = slice(start, start + chunk_rows)
            chunk = logits[rows_b[part], rows_t[part]].to(compute)  # a copy: [rows, V]
            picked[part] = chunk.gather(1, targets[part].unsqueeze(1)).squeeze(1)
            lse[part] = _logsumexp_in_place(chunk)
            del chunk  # free this chunk before the next one is allocated
        out = torch.zeros(logits.shape[:2], dtype=compute, device=logits.device)
        out[rows_b, rows_t] = picked - lse
        ctx.save_for_backward(logits, rows_b, rows_t, targets, lse)
        ctx.chunk_rows = chunk_rows
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        logits, rows_b, rows_t, targets, lse = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        compute = lse.dtype
        grad_logits = torch.zeros_like(logits)
        scale = grad_out[rows_b, rows_t].to(compute)
        for start in range(0, rows_b.numel(), ctx.chunk_rows):
            part = slice(start, start + ctx.chunk_rows)
            b, t, g = rows_b[part], rows_t[part], scale[part].unsqueeze(1)
            chunk = logits[b, t].to(compute)  # advanced indexing copies: the caller's logits stay intact
            # d(z_y - lse)/dz = onehot(y) - softmax(z); times the incoming gradient.
            chunk.sub_(lse[part].unsqueeze(1)).exp_().mul_(g.neg())
            chunk.scatter_add_(1, targets[part].unsqueeze(1), g)
            grad_logits[b, t] = chunk.to(logits.dtype)
            del chunk
        return grad_logits, None, None, None, None


def token_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    shift: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """``log softmax(logits)[label]`` per position, 0 (and zero gradient) where the label is ignored.

    Never materialises a ``[B, T, V]`` log-softmax: positions are processed ``chunk_size`` rows at
    a time, in float32 (float64 for float64 logits), and the backward pass recomputes the softmax
    of each chunk from one saved ``logsumexp`` per position.

    :param logits: ``[B, T, V]`` in any float dtype (any strides; computed in at least float32).
    :param labels: ``[B, T]`` token ids, ``ignore_index`` where nothing is scored.
    :param shift: ``True`` scores ``labels[:, t + 1]`` with ``logits[:, t]`` (causal LM); ``False``
        when the labels are already aligned with the logits.
    :param chunk_size: rows (positions) per chunk; default: as many as fit 32 MiB of float32
        logits, at least 32.
    :returns: ``[B, T]`` in float32 (float64 for float64 logits).
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        message = (
            f"token_logps: expected logits [B, T, V] and labels [B, T], got logits {tuple(logits.shape)} "
            f"and labels {tuple(labels.shape)}"
        )
        raise ValueError(message)
    aligned = shift_labels(labels, ignore_index) if shift else labels
    rows_b, rows_t = (aligned != ignore_index).nonzero(as_tuple=True)
    targets = aligned[rows_b, rows_t].long()
    _check_targets("token_logps", targets, logits.shape[-1], ignore_index)
    rows = chunk_size if chunk_size is not None else default_chunk_rows(logits.shape[-1])
    if rows < 1:
        message = f"token_logps: chunk_size must be a positive int, got {chunk_size}"
        raise ValueError(message)
    return _ChunkedTokenLogps.apply(logits, rows_b, rows_t, targets, int(rows))


def sequence_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    shift: bool = True,
    chunk_size: int | None = None,
) -> SequenceLogps:
    """Summed label log-probabilities per sequence and the count of scored labels.

    ``sequence_logps(logits, labels).logps[b] = sum_t log p(labels[b, t+1] | logits[b, t])`` over
    non-ignored labels (causal shift as in :func:`token_logps`, with the same memory behaviour).
    """
    aligned = shift_labels(labels, ignore_index) if shift else labels
    counts = (aligned != ignore_index).sum(dim=-1)
    per_token = token_logps(logits, aligned, ignore_index=ignore_index, shift=False, chunk_size=chunk_size)
    return SequenceLogps(per_token.sum(-1), counts)


class _ChunkedLinearTokenLogps(torch.autograd.Function):
    """``out[b, t] = log softmax(W h[b, t] + bias)[y]`` at ``(rows_b, rows_t)``; logits recomputed in backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, rows_b, rows_t, targets, chunk_rows):
        dtypes = {hidden.dtype, weight.dtype} | ({bias.dtype} if bias is not None else set())
        compute = torch.float64 if torch.float64 in dtypes else torch.float32
        w = weight.to(compute)
        b = bias.to(compute) if bias is not None else None
        count = rows_b.numel()
        lse = torch.empty(count, dtype=compute, device=hidden.device)
        picked = torch.empty(count, dtype=compute, device=hidden.device)
        for start in range(0, count, chunk_rows):
            part = slice(start, start + chunk_rows)
            x = hidden[rows_b[part], rows_t[part]].to(compute)
            z = torch.addmm(b, x, w.t()) if b is not None else x @ w.t()
            picked[part] = z.gather(1, targets[part].unsqueeze(1)).squeeze(1)
            lse[part] = _logsumexp_in_place(z)
            del x, z
        out = torch.zeros(hidden.shape[:2], dtype=compute, device=hidden.device)
        out[rows_b, rows_t] = picked - lse
        ctx.save_for_backward(hidden, weight, bias, rows_b, rows_t, targets, lse)
        ctx.chunk_rows = chunk_rows
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        hidden, weight, bias, rows_b, rows_t, targets, lse = ctx.saved_tensors
        want_h, want_w, want_b = ctx.needs_input_grad[:3]
        compute = lse.dtype
        w = weight.to(compute)
        b = bias.to(compute) if bias is not None else None
        grad_h = torch.zeros_like(hidden) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=compute, device=weight.device) if want_w else None
        grad_b = torch.zeros(bias.shape, dtype=compute, device=bias.device) if want_b else None
        scale = grad_out[rows_b, rows_t].to(compute)
        for start in range(0, rows_b.numel(), ctx.chunk_rows):
            part = slice(start, start + ctx.chunk_rows)
            rb, rt, g = rows_b[part], rows_t[part], scale[part].unsqueeze(1)
            x = hidden[rb, rt].to(compute)
            z = torch.addmm(b, x, w.t()) if b is not None else x @ w.t()
            # dz = g * (onehot(y) - softmax(z)), built in place of the recomputed logits
            z.sub_(lse[part].unsqueeze(1)).exp_().mul_(g.neg())
            z.scatter_add_(1, targets[part].unsqueeze(1), g)
            if want_h:
                grad_h[rb, rt] = (z @ w).to(hidden.dtype)
            if want_w:
                grad_w.addmm_(z.t(), x)
            if want_b:
                grad_b.add_(z.sum(dim=0))
            del x, z
        grad_w = grad_w.to(weight.dtype) if grad_w is not None else None
        grad_b = grad_b.to(bias.dtype) if grad_b is not None else None
        return grad_h, grad_w, grad_b, None, None, None, None


def linear_token_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    shift: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """:func:`token_logps` of the logits ``hidden @ weight.T + bias``, without ever forming them.

    :param hidden: ``[B, T, H]`` final hidden states (any float dtype; computed in at least float32).
    :param weight: ``[V, H]`` LM head weight; ``bias``: optional ``[V]``.
    :param labels: ``[B, T]``; ``shift`` / ``ignore_index`` as in :func:`token_logps`.
    :param chunk_size: rows per chunk; default: as many as fit 32 MiB of float32 logits, at least 32.
    :returns: ``[B, T]`` float32 (float64 for float64 inputs), 0 at ignored positions.

    Gradients reach ``hidden``, ``weight`` and ``bias``; the backward pass recomputes each chunk's
    logits (one extra matmul) instead of storing them.
    """
    if hidden.dim() != 3 or labels.shape != hidden.shape[:2] or weight.dim() != 2 or weight.shape[1] != hidden.shape[2]:
        message = (
            f"linear_token_logps: expected hidden [B, T, H], weight [V, H] and labels [B, T], got hidden "
            f"{tuple(hidden.shape)}, weight {tuple(weight.shape)} and labels {tuple(labels.shape)}"
        )
        raise ValueError(message)
    aligned = shift_labels(labels, ignore_index) if shift else labels
    rows_b, rows_t = (aligned != ignore_index).nonzero(as_tuple=True)
    rows = chunk_size if chunk_size is not None else default_chunk_rows(weight.shape[0])
    if rows < 1:
        message = f"linear_token_logps: chunk_size must be a positive int, got {chunk_size}"
        raise ValueError(message)
    targets = aligned[rows_b, rows_t].long()
    _check_targets("linear_token_logps", targets, weight.shape[0], ignore_index)
    return _ChunkedLinearTokenLogps.apply(hidden, weight, bias, rows_b, rows_t, targets, int(rows))


def linear_sequence_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    shift: bool = True,
    chunk_size: int | None = None,
) -> SequenceLogps:
    """:func:`sequence_logps` of the logits ``hidden @ weight.T + bias``, without ever forming them."""
    aligned = shift_labels(labels, ignore_index) if shift else labels
    counts = (aligned != ignore_index).sum(dim=-1)
    per_token = linear_token_logps(hidden, weight, aligned, bias=bias, ignore_index=ignore_index, shift=False,
                                   chunk_size=chunk_size)
    return SequenceLogps(per_token.sum(-1), counts)
