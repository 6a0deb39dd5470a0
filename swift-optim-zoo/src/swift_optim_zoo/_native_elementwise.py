"""The element-wise optimizers' per-tensor rules as C kernels (``_native_elementwise.c``): what ``fused=True`` runs
for float32 CPU tensors, in place of their compiled rules.

Each :class:`NativeRule` stands for one rule of :mod:`swift_optim_zoo._elementwise`'s optimizers and is given to
that rule's :class:`~swift_optim_zoo._fused.FusedKernel` as ``native``: called with the rule's tensors, its
``scalars`` tuple and its structural flags, it runs the C kernel and returns ``True``, or returns ``False`` without
touching anything when the tensors do not suit it (not float32, not contiguous, not on the CPU, different sizes),
a flag is one the kernel does not implement, or the library could not be built; the compiled rule then runs.

Why: inductor's CPU code for these rules ran 1.6-3.7x fused AdamW's step (a rule with a whole-tensor statistic --
LAMB's trust ratio, StableAdamW's RMS, MARS' norm, the cautious mask's count, Prodigy's sums -- pays a second
compiled loop that vectorises poorly), and its first step compiles for 10-60 s. The C kernels make one pass over
memory, or two where a statistic must be complete before the write (accumulated in double, in the pass that updates
the moments where the math allows), and build in about a second once per machine. Results agree with the compiled
and eager rules to float32 rounding (``tests/test_native_elementwise.py``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence

import torch

from swift_optim_zoo import _native
from swift_optim_zoo._native_rules import fit

_I64, _F32, _PTR, _INT = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int
#: the bit of each structural flag in the kernels' ``flags`` argument (``F_*`` in ``_native_elementwise.c``)
FLAG_BITS = {"cautious": 1, "decoupled": 2, "decay": 4, "corrected": 8, "nesterov": 16}


class NativeRule:
    """A C kernel ``name(tensor pointers..., numel, float scalars..., [flags,] threads)`` standing for a rule.

    :param tensors: how many tensors the rule takes (parameter, gradient, states; a ``None`` passes NULL).
    :param scalars: how many scalars its ``hyper`` tuple holds.
    :param flags: the rule's structural flags the kernel implements, with the rule's defaults; ``None``: the kernel
        takes no flags argument.
    :param scalar_type: the C type of the scalars (``float``; ``double`` for a kernel that derives its constants in
        double, as the eager rule's Python arithmetic).
    """

    def __init__(self, name: str, *, tensors: int, scalars: int, flags: Mapping[str, bool] | None = None,
                 scalar_type: type = _F32) -> None:
        self.name = name
        self.tensors = tensors
        self.scalars = scalars
        self.flags = None if flags is None else dict(flags)
        unknown = set(self.flags or {}) - set(FLAG_BITS)
        if unknown:
            message = f"NativeRule {name}: flags {sorted(unknown)} have no bit in FLAG_BITS"
            raise ValueError(message)
        self.argtypes = [_PTR] * tensors + [_I64] + [scalar_type] * scalars + ([_INT] if flags is not None else []) + [_INT]

    def __call__(self, *tensors: torch.Tensor | None, scalars: Sequence[float], **flags: bool) -> bool:
        """Run the kernel on ``tensors`` (updated in place) and return ``True``, or return ``False`` untouched."""
        if len(tensors) != self.tensors or len(scalars) != self.scalars:
            message = (f"{self.name}: expected {self.tensors} tensors and {self.scalars} scalars, got {len(tensors)} "
                       f"and {len(scalars)}")
            raise ValueError(message)
        bits = self._bits(flags)
        if bits is None or not fit(tensors):
            return False
        kernel = _native.bound(self.name, self.argtypes)
        if kernel is None:
            return False
        pointers = [None if t is None else t.data_ptr() for t in tensors]
        extra = [] if self.flags is None else [bits]
        kernel(*pointers, tensors[0].numel(), *map(float, scalars), *extra, torch.get_num_threads())
        return True

    def _bits(self, flags: Mapping[str, bool]) -> int | None:
        """The flags argument, or ``None`` if a flag is set that the kernel does not implement."""
        known = self.flags or {}
        if any(value and name not in known for name, value in flags.items()):
            return None
        values = {**known, **flags}
        return sum(FLAG_BITS[name] for name, value in values.items() if value)


SGD = NativeRule("swift_sgd_f32", tensors=3, scalars=5,
                 flags={"nesterov": False, "decoupled": True, "decay": False})
ADOPT = NativeRule("swift_adopt_f32", tensors=4, scalars=6,
                   flags={"cautious": False, "decoupled": False, "decay": False})
ADEMAMIX = NativeRule("swift_ademamix_f32", tensors=5, scalars=9, flags={"cautious": False, "decay": False})
ADAN = NativeRule("swift_adan_f32", tensors=6, scalars=9, flags={"decoupled": False, "decay": False})
MARS = NativeRule("swift_mars_f32", tensors=5, scalars=8, flags={"corrected": True, "cautious": False, "decay": False})
LAMB = NativeRule("swift_lamb_f32", tensors=4, scalars=8, flags={"cautious": False})
STABLE_ADAMW = NativeRule("swift_stable_adamw_f32", tensors=4, scalars=5, flags={"decay": False})
PRODIGY_UPDATE = NativeRule("swift_prodigy_update_f32", tensors=3, scalars=3, flags={"decay": False})
CAUTIOUS_ADAMW = NativeRule("swift_cautious_adamw_f32", tensors=4, scalars=7)
CAUTIOUS_LION = NativeRule("swift_cautious_lion_f32", tensors=3, scalars=4)

_PRODIGY_STATISTICS_TYPES = [_PTR] * 6 + [_I64] + [_F32] * 7 + [_PTR, _INT]


def prodigy_statistics(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                       s: torch.Tensor, p0: torch.Tensor, *, scalars: Sequence[float]) -> torch.Tensor | bool:
    """``prodigy.prodigy.prodigy_statistics_rule``: the moments and ``s`` updated in place, and the tensor's terms of
    Prodigy's two sums as a float64 ``[2]`` tensor (summed in double); ``False`` (untouched) if it cannot run."""
    tensors = (param, grad, exp_avg, exp_avg_sq, s, p0)
    kernel = _native.bound("swift_prodigy_statistics_f32", _PRODIGY_STATISTICS_TYPES) if fit(tensors) else None
    if kernel is None:
        return False
    out = torch.zeros(2, dtype=torch.float64)
    kernel(*(t.data_ptr() for t in tensors), param.numel(), *map(float, scalars), out.data_ptr(),
           torch.get_num_threads())
    return out
