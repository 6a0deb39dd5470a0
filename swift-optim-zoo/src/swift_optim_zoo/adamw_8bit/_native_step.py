"""``adamw_8bit``'s step as C kernels (``_native_adamw_8bit.c``): what ``fused=True`` runs for float32 CPU parameters.

:func:`quantized_step` stands for :func:`~swift_optim_zoo.adamw_8bit.adamw_8bit.adamw_8bit_rule` (block-wise 8-bit
moments) and :data:`FULL_STEP` for ``adamw_full_rule`` (float32 moments, tensors below ``min_8bit_size``); each
returns ``False`` without touching anything when the tensors do not suit it (a bf16 parameter, stochastic rounding,
another device, non-contiguous memory) or the library could not be built, and the caller runs the compiled rule.

Why: the compiled rule decodes with a per-element table gather and encodes with a binary search over the 255
midpoints (``torch.bucketize``), which inductor's CPU code runs element by element: 26x fused AdamW's step. The C
kernel decodes, steps, and encodes each block while it is in cache, finding each code with one table read
(:mod:`~swift_optim_zoo.adamw_8bit._code_tables`) or, with AVX-512, by arithmetic on the map's decades
(:mod:`~swift_optim_zoo.adamw_8bit._code_segments`).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import torch

from swift_optim_zoo import _native
from swift_optim_zoo._native_elementwise import NativeRule
from swift_optim_zoo.adamw_8bit._code_tables import code_table

_I64, _F64, _PTR, _INT = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p, ctypes.c_int
_QUANTIZED_TYPES = [_PTR] * 6 + [_I64, _I64] + [_PTR] * 5 + [_F64] * 7 + [_INT, _INT]

#: adamw_full_rule: (param, grad, exp_avg, exp_avg_sq), scalars (lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2)
FULL_STEP = NativeRule("swift_adamw_full_f32", tensors=4, scalars=7, scalar_type=ctypes.c_double)


class CodeBook:
    """The two dynamic maps and their code tables, on the CPU, as the kernel reads them."""

    def __init__(self, signed_map: torch.Tensor, signed_bounds: torch.Tensor, unsigned_map: torch.Tensor,
                 unsigned_bounds: torch.Tensor) -> None:
        self.signed_map = signed_map.float().cpu().contiguous()
        self.unsigned_map = unsigned_map.float().cpu().contiguous()
        self.signed_table = code_table(signed_bounds.float())
        self.unsigned_table = code_table(unsigned_bounds.float())

    def pointers(self) -> list[int]:
        return [t.data_ptr() for t in (self.signed_map, self.unsigned_map, self.signed_table, self.unsigned_table)]


def quantized_step(param: torch.Tensor, grad: torch.Tensor, exp_avg_codes: torch.Tensor,
                   exp_avg_absmax: torch.Tensor, exp_avg_sq_codes: torch.Tensor, exp_avg_sq_absmax: torch.Tensor,
                   book: CodeBook, *, block_size: int, scalars: Sequence[float], stochastic_round: bool,
                   vector: bool | int = True) -> bool:
    """One step of the 8-bit rule on a parameter of ``blocks * block_size`` elements (any shape, contiguous):
    ``scalars`` = ``(lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2)``. Returns whether it ran. ``vector=False``
    takes the scalar loops even where the CPU has AVX-512, ``vector=2`` the AVX-512 loops without the byte-wise
    (VBMI) decode (the tests compare all three)."""
    if stochastic_round or not _fits(param, grad, exp_avg_codes, exp_avg_absmax, exp_avg_sq_codes, exp_avg_sq_absmax,
                                     block_size=block_size):
        return False
    kernel = _native.bound("swift_adamw_8bit_f32", _QUANTIZED_TYPES)
    if kernel is None:
        return False
    threads = torch.get_num_threads()
    blocks = exp_avg_absmax.numel()
    scratch = torch.empty(threads * 2 * block_size, dtype=torch.float32)
    kernel(param.data_ptr(), grad.data_ptr(), exp_avg_codes.data_ptr(), exp_avg_absmax.data_ptr(),
           exp_avg_sq_codes.data_ptr(), exp_avg_sq_absmax.data_ptr(), blocks, block_size, *book.pointers(),
           scratch.data_ptr(), *map(float, scalars), int(vector), threads)
    return True


def _fits(param: torch.Tensor, grad: torch.Tensor, exp_avg_codes: torch.Tensor, exp_avg_absmax: torch.Tensor,
          exp_avg_sq_codes: torch.Tensor, exp_avg_sq_absmax: torch.Tensor, *, block_size: int) -> bool:
    numel = param.numel()
    floats = (param, grad, exp_avg_absmax, exp_avg_sq_absmax)
    codes = (exp_avg_codes, exp_avg_sq_codes)
    return all(_native._fits_native(t) for t in floats) and grad.numel() == numel \
        and all(t.dtype == torch.uint8 and t.device.type == "cpu" and t.is_contiguous() and t.numel() == numel
                for t in codes) \
        and exp_avg_absmax.numel() == exp_avg_sq_absmax.numel() == numel // block_size \
        and numel % block_size == 0


def encode(values: torch.Tensor, absmax: float, table: torch.Tensor, *, vector: bool = True) -> torch.Tensor | None:
    """The uint8 codes the kernel writes for ``values * (1 / absmax)`` (1-D float32) with a :func:`code_table`, or
    ``None`` if the library could not be built: the encoding alone, for tests against ``torch.bucketize``."""
    kernel = _native.bound("swift_encode_f32", [_PTR, _I64, ctypes.c_float, _PTR, _PTR, _INT])
    if kernel is None:
        return None
    values = values.float().contiguous()
    codes = torch.empty(values.numel(), dtype=torch.uint8)
    kernel(values.data_ptr(), values.numel(), absmax, table.data_ptr(), codes.data_ptr(), int(vector))
    return codes

