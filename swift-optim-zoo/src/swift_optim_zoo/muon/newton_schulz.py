"""Quintic Newton–Schulz iteration: an approximate orthogonalisation ``G -> U V^T`` without an SVD.

Same-shape matrices are stacked and iterated together (:func:`newton_schulz_orthogonalize_batch`),
in three buffers allocated once per call: an allocator that returns big blocks to the OS (glibc
above its mmap threshold, as in the benchmarks) otherwise faults in fresh pages for each of the 15
products of every matrix, which cost about 15 % of the iteration on a 2048x2048 matrix on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

KELLER_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
#: Largest stack of matrices iterated at once, in bytes of the iteration dtype (its three buffers
#: add as much again and two more Gram-sized stacks).
MAX_BATCH_BYTES = 128 * 2**20


def newton_schulz_orthogonalize(
    matrix: torch.Tensor,
    *,
    steps: int = 5,
    coefficients: tuple[float, float, float] = KELLER_COEFFICIENTS,
    eps: float = 1e-7,
    dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    r"""``matrix`` (``[A, B]``, or a stack ``[E, A, B]`` done per matrix) pushed towards ``U V^T``.

    With :math:`X_0 = G / \max(\lVert G\rVert_F, \epsilon)` (wide orientation: tall matrices are
    transposed so that the Gram matrix is the small one) each step is

    .. math:: A = X X^T,\quad X \leftarrow a X + (b A + c A^2) X

    with Keller Jordan's coefficients :math:`(a, b, c) = (3.4445, -4.7750, 2.0315)`: the singular
    values land in roughly [0.7, 1.2] after 5 steps rather than exactly 1, which does not hurt
    training. Computed in ``dtype`` (bfloat16 by default, as the reference does: it runs several
    times faster than float32 on CPUs with bf16 dot-product instructions and on GPUs); the result is
    in ``dtype``.
    """
    (out,) = newton_schulz_orthogonalize_batch([matrix], steps=steps, coefficients=coefficients, eps=eps, dtype=dtype)
    return out


def newton_schulz_orthogonalize_batch(
    matrices: Sequence[torch.Tensor],
    *,
    steps: int = 5,
    coefficients: tuple[float, float, float] = KELLER_COEFFICIENTS,
    eps: float = 1e-7,
    dtype: torch.dtype = torch.bfloat16,
) -> list[torch.Tensor]:
    """:func:`newton_schulz_orthogonalize` of each of ``matrices`` (each ``[A, B]`` or ``[E, A, B]``,
    all with the same ``A, B`` and device) as one batched iteration: the same products, matrix by
    matrix, as the one-at-a-time call (each matrix's products into its slice of buffers shared by the stack, so
    a matrix's result does not depend on which others it is stacked with). Returns one tensor per
    input, its shape, in ``dtype`` (views into the stack)."""
    if not matrices:
        return []
    shape = tuple(matrices[0].shape[-2:])
    if any(m.dim() not in (2, 3) or tuple(m.shape[-2:]) != shape for m in matrices):
        found = [tuple(m.shape) for m in matrices]
        message = f"newton_schulz_orthogonalize_batch: expected [A, B] or [E, A, B] tensors with one [A, B], got {found}"
        raise ValueError(message)
    a, b, c = coefficients
    counts = [1 if m.dim() == 2 else m.shape[0] for m in matrices]
    transposed = shape[0] > shape[1]
    rows, cols = (shape[1], shape[0]) if transposed else shape
    x = torch.empty(sum(counts), rows, cols, dtype=dtype, device=matrices[0].device)
    start = 0
    for m, n in zip(matrices, counts):
        x[start:start + n].copy_((m.mT if transposed else m).reshape(n, rows, cols))
        start += n
    gram = x.new_empty(x.shape[0], rows, rows)
    poly = torch.empty_like(gram)
    spare = torch.empty_like(x)
    # Matrix by matrix into slices of the shared buffers, not one bmm over the stack: a bf16 bmm's blocking
    # depends on the batch size on CPU, so the same matrix could round differently in a stack of 4 (one
    # process) than alone (an FSDP2 owner rank); one product per matrix is the same work.
    for i in range(x.shape[0]):
        x[i].div_(torch.linalg.vector_norm(x[i]).clamp_(min=eps))
        current, other = x[i], spare[i]
        for _ in range(steps):
            torch.mm(current, current.mT, out=gram[i])
            torch.addmm(gram[i], gram[i], gram[i], beta=b, alpha=c, out=poly[i])
            torch.addmm(current, poly[i], current, beta=a, out=other)
            current, other = other, current
    if steps % 2:
        x, spare = spare, x
    del gram, poly, spare
    out, start = [], 0
    for m, n in zip(matrices, counts):
        part = x[start:start + n]
        part = part.mT if transposed else part
        out.append(part[0] if m.dim() == 2 else part)
        start += n
    return out


def batches_by_shape(shapes: Sequence[tuple[int, ...]], *, itemsize: int,
                     max_batch_bytes: int = MAX_BATCH_BYTES) -> list[list[int]]:
    """Indices of ``shapes`` (each ``[A, B]`` or ``[E, A, B]``) grouped by ``[A, B]``, in order of first
    appearance, each group cut so that its stacked matrices take at most ``max_batch_bytes`` at
    ``itemsize`` bytes per element (a single larger item is a group of its own)."""
    groups: dict[tuple[int, int], list[list[int]]] = {}
    sizes: dict[tuple[int, int], int] = {}
    for index, shape in enumerate(shapes):
        key = (shape[-2], shape[-1])
        nbytes = itemsize * int(torch.Size(shape).numel())
        runs = groups.setdefault(key, [[]])
        if runs[-1] and sizes[key] + nbytes > max_batch_bytes:
            runs.append([])
            sizes[key] = 0
        runs[-1].append(index)
        sizes[key] = sizes.get(key, 0) + nbytes
    return [run for runs in groups.values() for run in runs]
