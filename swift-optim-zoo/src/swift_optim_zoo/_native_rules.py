"""Whole per-tensor update rules as C kernels: what ``fused=True`` runs for float32 CPU tensors.

Each function here mirrors one compiled rule of :mod:`swift_optim_zoo._fused` (named in its
docstring), takes the same tensors and the same ``scalars`` tuple, runs the C kernel of
``_native_kernels.c`` and returns ``True``; or returns ``False`` without touching anything when
the tensors do not suit it (not float32, not contiguous, not on the CPU) or the kernels could not
be built, and the caller runs its compiled rule. :class:`~swift_optim_zoo._fused.FusedKernel`
calls them first (its ``native`` argument).

Why: the compiled rules cost a cold first step of 11-17 s on this project's 2-core machine (58 s
under load) for inductor's compilation; the C file builds once per machine in about a second
(``benchmarks/bench_first_step.py``), at the same steady speed (one pass over memory).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence

import torch

from swift_optim_zoo import _native

_I64, _F32, _PTR, _INT = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int
#: C signature of each kernel after its tensor pointers: (pointer count, then the scalar types).
_SIGNATURES: dict[str, tuple[int, list[type]]] = {
    "swift_lion_f32": (3, [_I64, _F32, _F32, _F32, _F32, _INT]),
    "swift_schedule_free_f32": (4, [_I64, _F32, _F32, _F32, _F32, _F32, _F32, _F32, _INT]),
    "swift_adam_mini_f32": (4, [_I64, _I64, _F32, _F32, _F32, _F32, _F32, _F32, _F32, _INT]),
    "swift_adafactor_unfactored_f32": (4, [_I64, _F32, _F32, _F32, _F32, _F32, _F32, _F32, _INT, _INT]),
}


def _kernel(name: str, tensors: Sequence[torch.Tensor | None]) -> Callable[..., None] | None:
    """The C function ``name`` if every given tensor suits it and the library loads, else ``None``."""
    if not fit(tensors):
        return None
    pointers, scalars = _SIGNATURES[name]
    return _native.bound(name, [_PTR] * pointers + scalars)


def fit(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether the given tensors (``None`` skipped) are contiguous float32 CPU tensors of one element count."""
    present = [t for t in tensors if t is not None]
    return bool(present) and all(_native._fits_native(t) for t in present) \
        and all(t.numel() == present[0].numel() for t in present[1:])


def _pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def lion(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, *, scalars: Sequence[float]) -> bool:
    """``lion.lion._lion_rule``; ``scalars`` = ``(lr, beta1, beta2, weight_decay)``."""
    kernel = _kernel("swift_lion_f32", (param, grad, exp_avg))
    if kernel is None:
        return False
    kernel(param.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(), param.numel(), *map(float, scalars),
           torch.get_num_threads())
    return True


def schedule_free(y: torch.Tensor, grad: torch.Tensor, z: torch.Tensor, exp_avg_sq: torch.Tensor, *,
                  scalars: Sequence[float]) -> bool:
    """``schedule_free.adamw._schedule_free_rule``; ``scalars`` = ``(lr, beta1, beta2, eps, bias_correction2,
    weight_decay, ckp1)``."""
    kernel = _kernel("swift_schedule_free_f32", (y, grad, z, exp_avg_sq))
    if kernel is None:
        return False
    kernel(y.data_ptr(), grad.data_ptr(), z.data_ptr(), exp_avg_sq.data_ptr(), y.numel(), *map(float, scalars),
           torch.get_num_threads())
    return True


def adam_mini(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, *,
              scalars: Sequence[float]) -> bool:
    """``adam_mini.adam_mini._adam_mini_rule`` on ``[blocks, block_size]`` tensors with ``exp_avg_sq``
    ``[blocks]``; ``scalars`` = ``(lr, beta1, beta2, eps, weight_decay, 1 - beta1^t, 1 - beta2^t)``."""
    if param.dim() != 2 or exp_avg_sq.shape != param.shape[:1]:
        return False
    kernel = _kernel("swift_adam_mini_f32", (param, grad, exp_avg))
    if kernel is None or not _native._fits_native(exp_avg_sq):
        return False
    blocks, size = param.shape
    kernel(param.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(), blocks, size,
           *map(float, scalars), torch.get_num_threads())
    return True


def adafactor_unfactored(param: torch.Tensor, grad: torch.Tensor, second: torch.Tensor, exp_avg: torch.Tensor | None,
                         *, scalars: Sequence[float]) -> bool:
    """``adafactor._fused_rule._unfactored_rule``; ``scalars`` = ``(size, eps2, beta2_t, eps1, clip_threshold,
    weight_decay, beta1, scale_parameter)``."""
    kernel = _kernel("swift_adafactor_unfactored_f32", (param, grad, second, exp_avg))
    if kernel is None:
        return False
    *floats, scale_parameter = map(float, scalars)
    kernel(param.data_ptr(), grad.data_ptr(), second.data_ptr(), _pointer(exp_avg), param.numel(), *floats,
           int(scale_parameter > 0), torch.get_num_threads())
    return True
