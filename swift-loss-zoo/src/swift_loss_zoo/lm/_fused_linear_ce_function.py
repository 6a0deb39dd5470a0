"""The chunked autograd function behind ``fused_linear_cross_entropy``.

Forward, for the non-ignored rows only, a chunk at a time: logits ``z = x W^T + b`` in float32
(float64 for float64 inputs), ``logsumexp``, the per-row loss, and the gradient of the per-row loss
with respect to ``z`` (the softmax, shifted), from which ``grad_h`` rows and ``grad_W`` / ``grad_b``
sums are accumulated at once. The ``[N, V]`` logits never exist; ignored rows are never touched.

Backward: the stored gradients are those of ``sum_i loss_i`` over kept rows. The loss contract
reduces per-row losses with ``where(mask, losses, 0).sum() / N``, so the incoming gradient is the
same number ``1 / N`` on every kept row, and backward only multiplies the stored gradients by it.
If the incoming gradient is not uniform over kept rows (a caller weighting rows itself), or
backward runs a second time (``retain_graph=True``), it recomputes the chunks with the per-row
weights instead: always exact, fast in the common case.
"""

from __future__ import annotations

import torch

#: Bytes of float32 logits one chunk may hold.
CHUNK_BYTES = 64 * 2**20
#: The fewest rows per chunk. Fewer rows make thinner products and, at a large vocabulary, read and write the
#: whole ``grad_W`` once per chunk; with 768 the chunked steps run at the three matmuls' own time on CPU at
#: N = 8192, V = 128256 (``benchmarks/results/lm.md``, section ``bench_fused_linear_ce_peers``). The buffer is
#: then 768 x V floats: under the ``grad_W`` it sits beside when H >= 768.
MIN_CHUNK_ROWS = 768


def default_chunk_rows(vocab_size: int) -> int:
    """Rows per chunk so that one float32 ``[rows, vocab_size]`` block fits :data:`CHUNK_BYTES`."""
    return max(MIN_CHUNK_ROWS, CHUNK_BYTES // (4 * max(vocab_size, 1)))


def _chunk_loss_and_dlogits(
    x: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    label_smoothing: float,
    z_loss: float,
    want_dlogits: bool,
    out: torch.Tensor | None = None,
    inplace_softmax: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-row loss, correctness of the argmax, and d(loss_i)/d(z_i) (in place of the logits, in
    ``out`` when given: a ``[rows, V]`` buffer reused from chunk to chunk). ``inplace_softmax``
    (default: on CPU) computes the softmax with ATen's row-wise kernel writing over the logits,
    else with separate ops (subtract the max, exp, sum, scale)."""
    if bias is not None:
        z = torch.addmm(bias, x, weight.t(), out=out) if out is not None else torch.addmm(bias, x, weight.t())
    else:
        z = torch.mm(x, weight.t(), out=out) if out is not None else torch.mm(x, weight.t())
    vocab = z.shape[1]
    z_max, argmax = z.max(dim=1)
    correct = argmax == targets
    z_target = z.gather(1, targets.unsqueeze(1)).squeeze(1)
    z_mean = z.mean(dim=1) if label_smoothing else None
    if inplace_softmax if inplace_softmax is not None else z.device.type == "cpu":
        # softmax in place, row by row while the row is in cache (max, exp and sum, scale): one read and
        # one write of the chunk where separate ops make seven passes. The largest probability,
        # 1 / sum_v exp(z_v - max) >= 1 / V, gives lse without underflow.
        torch._softmax(z, 1, False, out=z)
        lse = z_max - z.gather(1, argmax.unsqueeze(1)).squeeze(1).log()
        row_scale = None
    else:
        z.sub_(z_max.unsqueeze(1)).exp_()  # z now holds exp(z - max)
        total = z.sum(dim=1)
        lse = z_max + total.log()
        row_scale = total.reciprocal()
    # (1 - eps)(lse - z_y) + eps (lse - mean_v z_v) + lambda lse^2
    loss = lse - (1.0 - label_smoothing) * z_target
    if label_smoothing:
        loss = loss - label_smoothing * z_mean
    if z_loss:
        loss = loss + z_loss * lse.square()
    if not want_dlogits:
        return loss, correct, None
    # dloss/dz = softmax * (1 + 2 lambda lse) - (1 - eps) onehot(y) - eps / V
    if z_loss:
        factor = 1.0 + 2.0 * z_loss * lse
        row_scale = factor if row_scale is None else row_scale * factor
    if row_scale is not None:
        z.mul_(row_scale.unsqueeze(1))
    z.scatter_add_(1, targets.unsqueeze(1), z.new_full((z.shape[0], 1), -(1.0 - label_smoothing)))
    if label_smoothing:
        z.sub_(label_smoothing / vocab)
    return loss, correct, z


def _logits_buffer(kept: int, chunk_rows: int, vocab: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """One ``[rows, V]`` block that every chunk's logits reuse: a fresh block per chunk costs page faults
    (an allocator returns blocks this large to the OS), about a tenth of the logits matmul on CPU."""
    return torch.empty(max(min(chunk_rows, kept), 1), vocab, dtype=dtype, device=device)


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
    """``(losses [N], correct [N]) = f(hidden [N, H], weight [V, H], bias [V] | None, targets [N], ...)``.

    ``losses`` is 0 at ignored rows (``targets == ignore_index``) and carries no gradient there.
    ``want_grads`` says which of hidden / weight / bias need a gradient (decided by the caller,
    outside the function, where grad mode is visible).
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, ignore_index, label_smoothing, z_loss, chunk_rows,
                want_grads):
        want_h, want_w, want_b = want_grads
        dtypes = {hidden.dtype, weight.dtype} | ({bias.dtype} if bias is not None else set())
        compute = torch.float64 if torch.float64 in dtypes else torch.float32
        rows, width = hidden.shape
        vocab = weight.shape[0]
        device = hidden.device
        kept = (targets != ignore_index).nonzero().squeeze(1)
        w = weight.to(compute)
        b = bias.to(compute) if bias is not None else None
        losses = torch.zeros(rows, dtype=compute, device=device)
        correct = torch.zeros(rows, dtype=torch.bool, device=device)
        grad_h = torch.zeros(rows, width, dtype=compute, device=device) if want_h else None
        grad_w = torch.zeros(vocab, width, dtype=compute, device=device) if want_w else None
        grad_b = torch.zeros(vocab, dtype=compute, device=device) if want_b else None
        want_any = want_h or want_w or want_b
        buffer = _logits_buffer(kept.numel(), chunk_rows, vocab, compute, device)
        for start in range(0, kept.numel(), chunk_rows):
            idx = kept[start:start + chunk_rows]
            x = hidden.index_select(0, idx).to(compute)
            y = targets.index_select(0, idx)
            loss, hit, dz = _chunk_loss_and_dlogits(x, y, w, b, label_smoothing, z_loss, want_any,
                                                    out=buffer[:idx.numel()])
            losses.index_copy_(0, idx, loss)
            correct.index_copy_(0, idx, hit)
            if want_any:
                _accumulate(dz, x, idx, w, grad_h, grad_w, grad_b)
            del loss, hit, dz, x  # free this chunk before the next one is allocated
        del buffer
        ctx.save_for_backward(hidden, weight, bias, targets, kept)
        ctx.stored_grads = (grad_h, grad_w, grad_b)
        ctx.settings = (label_smoothing, z_loss, chunk_rows, compute)
        ctx.mark_non_differentiable(correct)
        return losses, correct

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_losses, _grad_correct):
        hidden, weight, bias, targets, kept = ctx.saved_tensors
        stored, ctx.stored_grads = ctx.stored_grads, None  # release them with this call
        label_smoothing, z_loss, chunk_rows, compute = ctx.settings
        none = (None,) * 6
        if grad_losses is None or kept.numel() == 0:
            zeros = [torch.zeros_like(t) if t is not None and need else None
                     for t, need in zip((hidden, weight, bias), ctx.needs_input_grad[:3])]
            return (*zeros, *none)
        scale = grad_losses.index_select(0, kept).to(compute)
        uniform = bool((scale == scale[0]).all())
        needs = ctx.needs_input_grad[:3]
        complete = stored is not None and all(g is not None or not need for g, need in zip(stored, needs))
        if not (complete and uniform):  # weighted rows, or a second backward (retain_graph=True)
            stored = _recompute_grads(hidden, weight, bias, targets, kept, None if uniform else scale,
                                      label_smoothing, z_loss, chunk_rows, compute, needs)
        grads = [g.mul_(scale[0]) if g is not None and uniform else g for g in stored]
        out = [g.to(t.dtype) if g is not None and need else None
               for g, t, need in zip(grads, (hidden, weight, bias), needs)]
        return (*out, *none)


def _accumulate(dz, x, idx, w, grad_h, grad_w, grad_b) -> None:
    """Add one chunk's contribution: ``grad_h[idx] = dz W``, ``grad_W += dz^T x``, ``grad_b += sum dz``."""
    if grad_h is not None:
        grad_h.index_copy_(0, idx, dz @ w)
    if grad_w is not None:
        grad_w.addmm_(dz.t(), x)
    if grad_b is not None:
        grad_b.add_(dz.sum(dim=0))


def _recompute_grads(hidden, weight, bias, targets, kept, scale, label_smoothing, z_loss, chunk_rows, compute,
                     needs):
    """Gradients recomputed chunk by chunk: of ``sum_i scale_i loss_i`` (of ``sum_i loss_i`` when
    ``scale`` is None, with the forward pass's exact arithmetic)."""
    want_h, want_w, want_b = needs[0], needs[1], needs[2] and bias is not None
    w = weight.to(compute)
    b = bias.to(compute) if bias is not None else None
    grad_h = torch.zeros(hidden.shape, dtype=compute, device=hidden.device) if want_h else None
    grad_w = torch.zeros(weight.shape, dtype=compute, device=weight.device) if want_w else None
    grad_b = torch.zeros(bias.shape, dtype=compute, device=bias.device) if want_b else None
    buffer = _logits_buffer(kept.numel(), chunk_rows, weight.shape[0], compute, hidden.device)
    for start in range(0, kept.numel(), chunk_rows):
        idx = kept[start:start + chunk_rows]
        x = hidden.index_select(0, idx).to(compute)
        _, _, dz = _chunk_loss_and_dlogits(x, targets.index_select(0, idx), w, b, label_smoothing, z_loss, True,
                                           out=buffer[:idx.numel()])
        if scale is not None:
            dz.mul_(scale[start:start + chunk_rows].unsqueeze(1))
        _accumulate(dz, x, idx, w, grad_h, grad_w, grad_b)
        del dz, x
    return grad_h, grad_w, grad_b
