"""Native (C) CPU kernels for the fused optimizer steps, built on first use; torch ops when they cannot be.

Adafactor's row/column statistics and its update RMS, and APOLLO's channel norms, are reductions of
a gradient's squares. ATen computes them through a full-size square in memory and one reduction per
direction (its column reduction is slow on CPU); inductor's CPU column reduction is slower still.
``_native_kernels.c`` does each in one read of the matrix (OpenMP over rows, float32 in, sums
carried in double), reading four rows side by side: on a 2048x2048 matrix about 0.9 ms each where
ATen's square-then-reduce takes about 3. The factored parameter write (a row scale times a column
scale times the gradient) is there too: 1.6 ms against inductor's 2.4 on the same matrix. The
library also holds the whole per-tensor rules that ``fused=True`` runs on float32 CPU tensors
(``_native_kernels.c``: Lion, schedule-free AdamW, Adam-mini, Adafactor's 1-D step;
``_native_elementwise.c``: SGD, ADOPT, AdEMAMix, Adan, MARS, LAMB, StableAdamW, Prodigy, cautious AdamW and
Lion; ``_native_adamw_8bit.c``: the 8-bit AdamW step), bound through :func:`bound`.

* Built with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``: the one inductor needs for
  ``fused=True`` anyway) on first use, into ``$SWIFT_ZOO_CACHE_DIR`` (default
  ``~/.cache/swift_zoo``), one library per C file (:data:`UNITS`, each with the shared header) built when a
  kernel of it is first needed -- a first fused Lion step compiles ``_native_kernels.c`` only -- keyed by its
  sources, compiler and flags; concurrent builds (several ranks)
  each write their own file and rename it into place. The cache follows the rules of a code cache
  (:mod:`swift_optim_zoo._code_cache`): 0700 directories, only this user's files, an HMAC recorded at
  build checked before loading, a bad entry rebuilt (never mapped: a truncated ``.so`` would SIGBUS).
  No ``-march=native``: on x86-64 the kernels carry AVX-512/AVX2/baseline clones picked at load time
  (the 8-bit kernel's AVX-512 loops are chosen at run time), so a cache shared between machines (one user's)
  is safe.
* Used for contiguous float32 CPU matrices; anything else (CUDA, float64, bf16 parameters, views)
  takes the ATen expression of the same sum, or the caller's compiled kernel for the write.
* A cache folder that cannot be written or loaded from (a read-only home, a full or ``noexec`` disk): one
  ``RuntimeWarning`` says why, and the kernels are built for the process in a private temporary folder. If the
  build fails (no compiler) or the folder is not this user's alone, one ``RuntimeWarning`` says why and every call
  takes the ATen path: slower, same values to rounding.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from swift_optim_zoo._code_cache import UntrustedCacheError, load_library

#: The libraries, each its C file built with the shared header (the C files include it): a step waits only for
#: the library its kernels are in. ``kernels`` (Adafactor, APOLLO, Lion, Adam-mini, schedule-free) is
#: :func:`library`'s default.
HEADER = "_native_common.h"
UNITS = {"kernels": "_native_kernels.c", "elementwise": "_native_elementwise.c", "adamw_8bit": "_native_adamw_8bit.c"}
SOURCES = (HEADER, *UNITS.values())
# -ffp-contract=off: no multiply-add fused into one rounding, so a value a kernel recomputes in a later pass is
# bitwise the one of its first pass (the cautious masks count, then apply), and the arithmetic is torch's.
# -fno-math-errno: sqrtf as one vector instruction (with errno, each vector of square roots also checks for a
# negative input to call libm: measured 3-4x slower steps; the GCC pragma in the header does not reach the
# multi-versioned clones).
_COMMON_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno"]
FLAG_SETS = ([*_COMMON_FLAGS, "-fopenmp"], _COMMON_FLAGS)  # without OpenMP: one thread

_library: ctypes.CDLL | None = None  # the default unit's
_failure: str | None = None  # why the default unit (or, after it, another) could not be built
_units: dict[str, ctypes.CDLL | None] = {}  # the other units, None once they failed


def cache_dir() -> Path:
    """Where built kernels live: ``$SWIFT_ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/swift_zoo``, else ``~/.cache/swift_zoo``."""
    if os.environ.get("SWIFT_ZOO_CACHE_DIR"):
        return Path(os.environ["SWIFT_ZOO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "swift_zoo"


_process_folder: Path | None = None


def _process_cache(reason: OSError) -> Path:
    """A private temporary folder (0700, removed at exit) for the kernels of this process, when
    :func:`cache_dir` cannot hold or load them; warns once why."""
    global _process_folder
    if _process_folder is None:
        _process_folder = Path(tempfile.mkdtemp(prefix="swift_zoo_kernels-"))
        atexit.register(shutil.rmtree, _process_folder, ignore_errors=True)
        message = (f"swift_optim_zoo: the kernel cache {cache_dir()} cannot be used ({reason}); the native kernels "
                   f"are built for this process in {_process_folder} (set SWIFT_ZOO_CACHE_DIR to a writable folder "
                   "to build them once)")
        warnings.warn(message, RuntimeWarning, stacklevel=5)
    return _process_folder


def find_compiler() -> str | None:
    """The C compiler the kernels are built with: ``$CC``, else the first of ``cc``, ``gcc``, ``clang`` on PATH."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def _compiler() -> str:
    compiler = find_compiler()
    if compiler is None:
        message = "no C compiler found (set $CC, or install gcc or clang)"
        raise RuntimeError(message)
    return compiler


def _compile(compiler: str, flags: list[str], sources: dict[str, str]) -> Callable[[Path], None]:
    """A builder for :func:`load_library`: writes ``sources`` (name -> text) beside the output and compiles the
    ``.c`` ones into the path it is given."""

    def build(output: Path) -> None:
        for name, text in sources.items():
            (output.parent / name).write_text(text)
        files = [str(output.parent / name) for name in sources if name.endswith(".c")]
        result = subprocess.run([compiler, *flags, *files, "-o", str(output)], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            message = f"{compiler} {' '.join(flags)}: {result.stderr.strip().splitlines()[-1:]}"
            raise RuntimeError(message)

    return build


def _warn_rejected(reason: str) -> None:
    message = f"swift_optim_zoo: a cached native library failed verification and is rebuilt ({reason})"
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _build(unit: str = "kernels") -> ctypes.CDLL:
    """Load ``unit``'s kernels from the verified cache (:mod:`swift_optim_zoo._code_cache`), building them if
    needed."""
    package = resources.files("swift_optim_zoo")
    sources = {name: package.joinpath(name).read_text() for name in (HEADER, UNITS[unit])}
    compiler = _compiler()
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256("\n".join([*sources.values(), compiler, *flags, platform.machine()]).encode()).hexdigest()
        name, builder = f"native-{unit}-{key[:16]}.so", _compile(compiler, flags, sources)
        try:
            try:
                library = load_library(cache_dir(), name, builder, on_rejected=_warn_rejected)
            except OSError as exc:  # a read-only home, a full or noexec disk: build for this process only
                library = load_library(_process_cache(exc), name, builder, on_rejected=_warn_rejected)
        except UntrustedCacheError:
            raise
        except RuntimeError as exc:  # this flag set does not compile here: try the next
            errors.append(str(exc))
            continue
        if unit != "kernels":
            return library
        library.swift_square_sums_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        library.swift_square_sums_f32.restype = ctypes.c_double
        library.swift_weighted_square_sum_f32.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                                          ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        library.swift_weighted_square_sum_f32.restype = ctypes.c_double
        library.swift_factored_write_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                                     ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p,
                                                     ctypes.c_float, ctypes.c_int]
        library.swift_factored_write_f32.restype = None
        return library
    raise RuntimeError("; ".join(errors))


def library(unit: str = "kernels") -> ctypes.CDLL | None:
    """The loaded kernels of ``unit`` (:data:`UNITS`), built on the first call; ``None`` (after one warning) if
    that failed."""
    global _library, _failure
    if unit == "kernels":
        if _library is None and _failure is None:
            _library = _try_build(unit)
        return _library
    if unit not in _units:
        _units[unit] = _try_build(unit)
    return _units[unit]


def _try_build(unit: str) -> ctypes.CDLL | None:
    global _failure
    try:
        return _build(unit)
    except Exception as exc:  # no compiler, compile error, unwritable cache, load error: fall back to ATen
        _failure = f"{type(exc).__name__}: {exc}"
        message = (f"swift_optim_zoo: the native kernels could not be built ({_failure}); "
                   "fused optimizer steps use torch ops instead (slower, same values)")
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        return None


_unit_of: dict[str, str] = {}


def unit_of(name: str) -> str:
    """The unit whose C file defines the function ``name``."""
    if name not in _unit_of:
        package = resources.files("swift_optim_zoo")
        definition = re.compile(rf"^[A-Za-z_][\w \*]*\b{re.escape(name)}\(", re.MULTILINE)
        found = [unit for unit, source in UNITS.items() if definition.search(package.joinpath(source).read_text())]
        if len(found) != 1:
            message = f"native kernel {name!r}: expected its definition in one of {sorted(UNITS.values())}, found {found}"
            raise LookupError(message)
        _unit_of[name] = found[0]
    return _unit_of[name]


_bound: dict[str, Callable[..., Any]] = {}


def bound(name: str, argtypes: list[type], restype: type | None = None) -> Callable[..., Any] | None:
    """The library's C function ``name`` with its ctypes signature set (once), or ``None`` if the library
    could not be built."""
    if name not in _bound:
        loaded = library(unit_of(name))
        if loaded is None:
            return None
        function = getattr(loaded, name)
        function.argtypes = argtypes
        function.restype = restype
        _bound[name] = function
    return _bound[name]


def _fits_native(tensor: torch.Tensor) -> bool:
    """A contiguous float32 CPU tensor: what the C kernels read."""
    return tensor.device.type == "cpu" and tensor.dtype == torch.float32 and tensor.is_contiguous()


def _native_matrix(matrix: torch.Tensor, *vectors: torch.Tensor) -> ctypes.CDLL | None:
    """The library if ``matrix`` (and ``vectors``) can go to the C kernels, else ``None``."""
    if matrix.dim() != 2 or matrix.numel() == 0 or not all(_fits_native(t) for t in (matrix, *vectors)):
        return None
    return library()


def _sum_of_squares(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    flat = tensor.reshape(-1).to(dtype)
    return torch.dot(flat, flat)


def square_sums(matrix: torch.Tensor, extra: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Row and column sums of ``matrix**2`` (a 2-D tensor), ``(m,)`` and ``(n,)`` in its dtype; with
    ``extra`` (same shape, any float dtype) also ``sum(extra**2)`` as a 0-d tensor of ``matrix``'s
    dtype (read in the same pass when both suit the C kernel; ``None`` without ``extra``)."""
    if extra is not None and extra.shape != matrix.shape:
        message = f"square_sums: expected extra of shape {tuple(matrix.shape)}, got {tuple(extra.shape)}"
        raise ValueError(message)
    if extra is not None and not _fits_native(extra):  # the matrix natively if it can be, `extra` through torch
        row_sums, col_sums, _ = square_sums(matrix)
        return row_sums, col_sums, _sum_of_squares(extra, matrix.dtype)
    native = _native_matrix(matrix)
    if native is None:
        squared = matrix * matrix
        return (squared.sum(dim=1), squared.sum(dim=0),
                None if extra is None else _sum_of_squares(extra, matrix.dtype))
    rows, cols = matrix.shape
    threads = torch.get_num_threads()
    row_sums, col_sums = matrix.new_empty(rows), matrix.new_empty(cols)
    scratch = torch.empty(threads * cols * 3 // 2 + 1, dtype=torch.float64)  # threads*cols doubles + floats
    value = native.swift_square_sums_f32(matrix.data_ptr(), None if extra is None else extra.data_ptr(), rows, cols,
                                         row_sums.data_ptr(), col_sums.data_ptr(), scratch.data_ptr(), threads)
    return row_sums, col_sums, None if extra is None else torch.tensor(value, dtype=matrix.dtype)


def weighted_square_sum(matrix: torch.Tensor, row_weights: torch.Tensor, col_weights: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_{ij} a_i\, x_{ij}^2\, b_j` for ``matrix`` :math:`x` (m x n), ``row_weights`` :math:`a`
    (m) and ``col_weights`` :math:`b` (n), as a 0-d tensor in ``matrix``'s dtype."""
    if row_weights.shape != matrix.shape[:1] or col_weights.shape != matrix.shape[1:]:
        message = (f"weighted_square_sum: expected weights of shapes {tuple(matrix.shape[:1])} and "
                   f"{tuple(matrix.shape[1:])}, got {tuple(row_weights.shape)} and {tuple(col_weights.shape)}")
        raise ValueError(message)
    native = _native_matrix(matrix, row_weights, col_weights)
    if native is None:
        return torch.dot(row_weights, torch.mv(matrix * matrix, col_weights))
    rows, cols = matrix.shape
    value = native.swift_weighted_square_sum_f32(matrix.data_ptr(), rows, cols, row_weights.data_ptr(),
                                                 col_weights.data_ptr(), torch.get_num_threads())
    return torch.tensor(value, dtype=matrix.dtype)


def factored_write(param: torch.Tensor, grad: torch.Tensor, row_scale: torch.Tensor, col_scale: torch.Tensor, *,
                   decay: float | torch.Tensor, exp_avg: torch.Tensor | None, beta1: float) -> bool:
    r"""``param <- param * decay - u`` with :math:`u = g \odot s_r s_c^\top` (through
    ``exp_avg <- beta1 * exp_avg + u``, ``u = exp_avg``, when ``exp_avg`` is given), in one pass, if
    the tensors suit the C kernel (float32, contiguous, CPU). Returns whether it ran; ``False``: the
    caller writes by other means (nothing was touched)."""
    if grad.shape != param.shape or row_scale.shape != param.shape[:1] or col_scale.shape != param.shape[1:] \
            or (exp_avg is not None and exp_avg.shape != param.shape):
        return False
    others = (grad, row_scale, col_scale) if exp_avg is None else (grad, row_scale, col_scale, exp_avg)
    native = _native_matrix(param, *others)
    if native is None:
        return False
    rows, cols = param.shape
    native.swift_factored_write_f32(param.data_ptr(), grad.data_ptr(), row_scale.data_ptr(), col_scale.data_ptr(),
                                    rows, cols, float(decay), None if exp_avg is None else exp_avg.data_ptr(),
                                    float(beta1), torch.get_num_threads())
    return True
