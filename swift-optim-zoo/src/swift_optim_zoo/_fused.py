"""Fused per-tensor update kernels: what ``fused=True`` means in this package.

An element-wise optimizer rule written with torch ops makes one pass over memory per op (Lion
four, schedule-free AdamW eight), where ``torch.optim.AdamW(fused=True)`` makes one. A
:class:`FusedKernel` wraps the per-tensor rule, written once as a function of in-place torch ops,
and runs it either as written (eager) or compiled by ``torch.compile`` (inductor), which fuses it
into one or two loops over memory.

* One compilation per kernel and dtype, not per shape: the kernel is compiled with
  ``dynamic=True`` and callers pass flat 1-D aliases (or 2-D ``[blocks, block_size]`` ones for
  rules with per-block reductions), so a model's many shapes share one compiled loop.
* Hyperparameters reach the kernel as one small tensor (``hyper``; float32, float64 for float64
  parameters, which is the precision eager CPU ops use for Python scalars), never as Python
  floats: dynamo would specialise on float values (recompiling when ``betas`` change) or, for
  some arguments such as ``alpha=``, bake a stale constant in. A tensor input is neither, so an
  LR schedule runs one compiled loop.
* Float32 CPU tensors run the same rule as a C kernel (``native``, see
  :mod:`swift_optim_zoo._native_rules`), built once per machine in about a second: no inductor
  compilation at all. Everything else (bf16 parameters, CUDA) is compiled: the first call compiles
  (10-60 s cold on a 2-core machine; inductor caches the generated code on disk, so later
  processes start faster). If compilation fails (no C++ compiler, a device inductor cannot
  target), one warning names the optimizer and the reason, and that kernel runs eagerly from then
  on: the same rule, slower, never a different answer.
* Compiled arithmetic keeps intermediates in float32 where eager bf16 ops round after each op, so
  the fused and eager paths agree to rounding, not bit for bit (tests compare them).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from swift_zoo import ConfigError


class FusedKernel:
    """A per-tensor update rule ``rule(*tensors, hyper, **flags)``, compiled once and fused on first use.

    A rule updates its tensors in place; it may also return small tensors (per-row statistics) for a
    second kernel, when one loop cannot do the whole rule (a reduction must finish first).
    """

    def __init__(self, rule: Callable[..., None], *, native: Callable[..., bool] | None = None) -> None:
        self.rule = rule
        #: the same rule as a C kernel (:mod:`swift_optim_zoo._native_rules`,
        #: :mod:`swift_optim_zoo._native_elementwise`), tried first when the hyperparameters are Python floats; it
        #: returns False for tensors it does not take, True when it ran, or what the rule returns
        self.native = native
        self.native_calls = 0
        self._compiled: Callable[..., None] | None = None
        self._succeeded = False
        self.failure: str | None = None  # why compilation failed, once it has
        self._warned_partial = False

    def __call__(self, *tensors: torch.Tensor | None, scalars: Sequence[float] | torch.Tensor, owner: str,
                 flat: bool = False, **flags: bool | int | None) -> Any:
        """Apply the rule to ``tensors`` (updated in place) with ``scalars`` as its ``hyper`` tensor;
        returns what the rule returns. ``scalars`` already a tensor (values computed on the device,
        e.g. from a reduction) is passed as it is; it must have :func:`scalar_dtype`'s dtype.

        ``flags`` are structural switches (bools, an axis: each value compiles its own variant, once);
        ``owner`` names the optimizer in the warning if compilation fails. Single-element tensors
        run eagerly: dynamo specialises size 1, and a compiled loop gains nothing there.

        ``flat=True``, for an element-wise rule: ``tensors`` are contiguous, of any shape; the C kernel reads
        them as they are and the rest gets flat :func:`alias` es, made only then (an alias costs several
        microseconds per tensor, most of the per-parameter cost of a step on small tensors).
        """
        if self.native is not None and not isinstance(scalars, torch.Tensor):
            result = self.native(*tensors, scalars=tuple(scalars), **flags)
            if result is not False:
                self.native_calls += 1
                return None if result is True else result
        if flat:
            tensors = tuple(None if t is None else alias(t) for t in tensors)
        first = tensors[0]
        dtype = scalar_dtype(first.dtype)
        if isinstance(scalars, torch.Tensor):
            if scalars.dtype != dtype or scalars.dim() != 1:
                message = (f"{self.rule.__name__}: expected hyper as a 1-D {dtype} tensor, "
                           f"got {scalars.dtype} of shape {tuple(scalars.shape)}")
                raise ValueError(message)
            hyper = scalars
        else:
            hyper = torch.tensor(scalars, dtype=dtype, device=first.device)
        if self.failure is not None or first.numel() < 2:
            return self.rule(*tensors, hyper, **flags)
        if self._compiled is None:
            self._compiled = torch.compile(self.rule, dynamic=True, fullgraph=True, options=compile_options())
        try:
            result = self._compiled(*tensors, hyper, **flags)
        except Exception as exc:  # compilation failed before any tensor was written: run the same rule eagerly
            self._fall_back(exc, owner)
            return self.rule(*tensors, hyper, **flags)
        self._succeeded = True
        return result

    def _fall_back(self, exc: Exception, owner: str) -> None:
        text = str(exc).strip()
        reason = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        if self._succeeded:  # a new variant (shape class, dtype) failed, e.g. dynamo's recompile limit
            if not self._warned_partial:
                self._warned_partial = True
                message = (f"optimizer {owner!r}: fused=True could not compile a new variant of "
                           f"{self.rule.__name__}; those tensors run eagerly (same rule, slower). Reason: {reason}")
                warnings.warn(message, RuntimeWarning, stacklevel=4)
            return
        self.failure = reason
        message = (
            f"optimizer {owner!r}: fused=True could not compile its update kernel "
            f"({self.rule.__name__}) and runs it eagerly instead (same rule, slower). Reason: {reason}"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    @property
    def compiled(self) -> bool:
        """Whether calls run compiled code (``False`` before the first call or after a failure)."""
        return self._succeeded and self.failure is None


def compile_options() -> dict[str, Any]:
    """Inductor options for every kernel.

    * ``cpp.dynamic_threads``: the generated loops ask OpenMP for the thread count when they run. With
      symbolic sizes inductor's CPU backend otherwise guesses a loop is too small to split and emits a
      single-threaded one (measured 1.7x slower at 4 M elements).
    * ``cpp.threads``, at least 2: the count inductor plans the code for. Left at its default it is
      ``torch.get_num_threads()`` at compile time, and code planned for one thread (the conformance
      checks run on one) leaves scalar writes after a reduction, such as Adam-mini's one-block second
      moment, unguarded in the parallel region: run on two threads, each thread applied the update
      (torch 2.13). Inductor's code cache also ignores the thread count under ``dynamic_threads``, so
      such code compiled by one process was reused by the next. Planned for two or more threads, the
      code guards those writes (``omp single``) and is right on any count, one included; the value is
      part of the cache key, so no code planned for one thread is reused.
    """
    return {"cpp.dynamic_threads": True, "cpp.threads": max(2, os.cpu_count() or 1)}


def scalar_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of ``hyper`` for tensors of ``dtype``: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def alias(tensor: torch.Tensor, *shape: int) -> torch.Tensor:
    """A contiguous tensor's memory seen with ``shape`` (default: flat 1-D), as a tensor of its own.

    Not a view: a view carries its base, and dynamo guards on the base's sizes, so flat views of
    1-D, 2-D and 3-D parameters would each compile their own kernel. Writes reach ``tensor``.
    """
    if not tensor.is_contiguous():
        message = f"alias: expected a contiguous tensor, got strides {tensor.stride()} for shape {tuple(tensor.shape)}"
        raise ValueError(message)
    size = shape or (tensor.numel(),)
    if tuple(size) == tuple(tensor.shape) and tensor._base is None:
        return tensor.detach()  # already base-less with that shape: a plain tensor sharing it (1 us, not 10)
    if math.prod(size) != tensor.numel():
        message = f"alias: shape {size} holds {math.prod(size)} elements, the tensor {tensor.numel()}"
        raise ValueError(message)
    strides = [1] * len(size)
    for i in range(len(size) - 2, -1, -1):
        strides[i] = strides[i + 1] * size[i + 1]
    out = tensor.new_empty(0)
    with torch.no_grad():
        out.set_(tensor.untyped_storage(), tensor.storage_offset(), size, strides)
    return out


def can_alias(*tensors: torch.Tensor) -> bool:
    """Whether every tensor is dense and contiguous, so :func:`alias` can see it with another shape."""
    return all(t.layout == torch.strided and t.is_contiguous() for t in tensors)


def check_fused(owner: str, fused: Any) -> None:
    """``fused`` must be a bool: a string such as ``"false"`` from a config would silently mean True."""
    if not isinstance(fused, bool):
        message = f"optimizer {owner!r}: 'fused' must be a bool, got {fused!r}"
        raise ConfigError(message, key="fused", expected="a bool", found=fused)
