"""Projector maths shared by the low-rank optimizers (GaLore, Q-GaLore, APOLLO).

A ``m x n`` gradient ``G`` is projected on its *smaller* side, as GaLore does (paper Alg. 2 and
galore-torch's ``std`` projection): ``m >= n`` -> ``right`` (``R = G B``, ``B`` is ``n x r``, ``R`` is
``m x r``); ``m < n`` -> ``left`` (``R = B^T G``, ``B`` is ``m x r``, ``R`` is ``r x n``). The basis ``B``
is always stored as ``k x r`` with ``k = min(m, n)``, so the projector costs ``r min(m, n)`` numbers
and the low-rank state ``r max(m, n)``.

Refreshing an orthonormal basis (top-``r`` singular vectors of the current gradient):

* ``"svd"``: exact, ``torch.linalg.svd`` (about 2.0 s for 2048x2048 on a 2-core CPU);
* ``"randomized"``: Halko-Martinsson-Tropp range finder, ``r + oversampling`` Gaussian probes,
  ``power_iterations`` re-orthonormalised power iterations, then the SVD of the small
  ``(r + p) x n`` sketch (about 20x cheaper; a few percent more residual with one power iteration).

Singular vectors are defined up to sign. Every basis gets a deterministic sign here: aligned with the
previous basis (``sign(diag(B_old^T B_new))``) when there is one, so Adam moments kept in the low-rank
space keep their meaning across a refresh when the subspace barely moves; else the entry of largest
magnitude of each column is made positive. Results then do not depend on the LAPACK build.

Quantisation (Q-GaLore): asymmetric min/max per group of ``group_size`` consecutive entries,
``code = round((x - lo) / scale)``, ``scale = (hi - lo) / (2^bits - 1)``; int8 codes one per byte,
int4 codes two per byte; ``scale`` and ``lo`` float32.

"""

from __future__ import annotations

import math
from typing import Literal

import torch

Side = Literal["left", "right"]
_MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------- shapes and sides
def matrix_view_shape(shape: torch.Size | tuple[int, ...]) -> tuple[int, int]:
    """The 2-D shape a parameter is handled as: ``(shape[0], prod(shape[1:]))``."""
    rows = int(shape[0])
    return rows, int(math.prod(shape[1:]))


def projection_side(rows: int, cols: int) -> Side:
    """``"right"`` when ``rows >= cols`` (project the columns away), else ``"left"`` (galore-torch ``std``)."""
    return "right" if rows >= cols else "left"


def project(grad: torch.Tensor, basis: torch.Tensor, side: Side) -> torch.Tensor:
    """The low-rank gradient: ``G B`` (right, ``m x r``) or ``B^T G`` (left, ``r x n``)."""
    return grad @ basis if side == "right" else basis.mT @ grad


def project_back(low_rank: torch.Tensor, basis: torch.Tensor, side: Side) -> torch.Tensor:
    """Back to the parameter's space: ``R B^T`` (right) or ``B R`` (left)."""
    return low_rank @ basis.mT if side == "right" else basis @ low_rank


# ----------------------------------------------------------------------------- seeds
def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 finaliser over each value in turn): cheap, deterministic."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state >> 1


def gaussian(rows: int, cols: int, seed: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Standard normal ``rows x cols`` drawn on CPU from ``seed`` (the same numbers on every device)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(rows, cols, generator=generator, dtype=dtype).to(device)


def random_projection(dim: int, rank: int, seed: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """APOLLO's projector: ``dim x rank`` i.i.d. ``N(0, 1/rank)`` entries (not orthonormalised)."""
    return gaussian(dim, rank, seed, dtype=dtype, device=device) / math.sqrt(rank)


# ----------------------------------------------------------------------------- bases
def _orient(grad: torch.Tensor, side: Side) -> torch.Tensor:
    # the basis spans the leading left singular vectors of ``a`` (k x other)
    return grad if side == "left" else grad.mT


def exact_basis(grad: torch.Tensor, rank: int, side: Side) -> torch.Tensor:
    """Top-``rank`` singular vectors of ``grad`` on ``side`` (``k x rank``), exact SVD."""
    u, _, _ = torch.linalg.svd(_orient(grad, side), full_matrices=False)
    return u[:, :rank]


def raw_svd_basis(grad: torch.Tensor, rank: int, side: Side) -> torch.Tensor:
    """Top-``rank`` singular vectors with the signs LAPACK returns, computed as galore-torch does: the SVD of
    ``grad`` itself (never its transpose), ``U[:, :rank]`` on the left, ``Vh[:rank].T`` on the right."""
    u, _, vh = torch.linalg.svd(grad, full_matrices=False)
    return u[:, :rank] if side == "left" else vh[:rank].mT


def randomized_basis(
    grad: torch.Tensor,
    rank: int,
    side: Side,
    *,
    seed: int,
    oversampling: int = 8,
    power_iterations: int = 1,
) -> torch.Tensor:
    """Approximate top-``rank`` singular vectors (randomized range finder, Halko et al. 2011, Alg. 4.4)."""
    a = _orient(grad, side)
    k, other = a.shape
    width = min(rank + oversampling, k, other)
    probes = gaussian(other, width, seed, dtype=a.dtype, device=a.device)
    q = torch.linalg.qr(a @ probes).Q
    for _ in range(power_iterations):
        z = torch.linalg.qr(a.mT @ q).Q
        q = torch.linalg.qr(a @ z).Q
    u_small, _, _ = torch.linalg.svd(q.mT @ a, full_matrices=False)
    return q @ u_small[:, :rank]


def align_signs(basis: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
    """``basis`` with each column's sign fixed (see the module docstring); returns a new tensor."""
    if previous is not None and previous.shape == basis.shape:
        reference = (previous.to(basis.dtype) * basis).sum(dim=0)
    else:
        index = basis.abs().argmax(dim=0, keepdim=True)
        reference = basis.gather(0, index).squeeze(0)
    signs = torch.where(reference < 0, -1.0, 1.0).to(basis.dtype)
    return basis * signs


def subspace_basis(
    grad: torch.Tensor,
    rank: int,
    side: Side,
    method: Literal["svd", "randomized"],
    *,
    seed: int = 0,
    previous: torch.Tensor | None = None,
    oversampling: int = 8,
    power_iterations: int = 1,
) -> torch.Tensor:
    """An orthonormal ``k x rank`` basis of ``grad``'s leading singular subspace, signs fixed."""
    if method == "svd":
        basis = exact_basis(grad, rank, side)
    else:
        basis = randomized_basis(grad, rank, side, seed=seed, oversampling=oversampling,
                                 power_iterations=power_iterations)
    return align_signs(basis, previous)


# ----------------------------------------------------------------------------- quantisation
def quantized_nbytes(numel: int, bits: int, group_size: int) -> int:
    """Bytes :func:`quantize_groups` keeps for ``numel`` values: codes plus two float32 per group."""
    groups = -(-numel // group_size)
    return groups * group_size * bits // 8 + groups * 8


def quantize_groups(values: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(codes uint8, scale float32, low float32)`` of ``values`` (flattened, zero-padded to whole groups)."""
    if bits not in (4, 8):
        message = f"quantisation: bits must be 4 or 8, got {bits}"
        raise ValueError(message)
    if group_size < 2 or group_size % 2:
        message = f"quantisation: group_size must be an even number >= 2, got {group_size}"
        raise ValueError(message)
    flat = values.detach().reshape(-1).to(torch.float32)
    pad = (-flat.numel()) % group_size
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    groups = flat.view(-1, group_size)
    low = groups.amin(dim=1)
    high = groups.amax(dim=1)
    levels = (1 << bits) - 1
    scale = ((high - low) / levels).clamp_min(torch.finfo(torch.float32).tiny)
    codes = ((groups - low[:, None]) / scale[:, None]).round_().clamp_(0, levels).to(torch.uint8).view(-1)
    if bits == 4:
        codes = codes[0::2] | (codes[1::2] << 4)
    return codes, scale, low


def dequantize_groups(
    codes: torch.Tensor,
    scale: torch.Tensor,
    low: torch.Tensor,
    bits: int,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The values :func:`quantize_groups` encoded, reshaped to ``shape``, in ``dtype``."""
    if bits == 4:
        codes = torch.stack([codes & 0x0F, codes >> 4], dim=1).view(-1)
    groups = codes.view(scale.numel(), -1).to(torch.float32) * scale[:, None] + low[:, None]
    numel = int(math.prod(shape))
    return groups.view(-1)[:numel].view(shape).to(dtype)
