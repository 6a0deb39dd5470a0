"""Value domains of declared inputs: which values a tensor may hold, checked before any arithmetic.

A :class:`~swift_zoo.TensorInput` names its domain with ``domain=``:

* ``"binary"`` -- every value is 0 or 1 (bool, int or float): flags such as "similar pair";
* ``"unit_interval"`` -- every value is in [0, 1]: probabilities, soft targets;
* ``"non_negative"`` -- every value is >= 0: counts and lengths;
* ``"index:V"`` -- an integer class index in ``[0, V)``, where ``V`` is a shape symbol bound by another
  input (``logits [B, T, V]``) or a number; an input of role ``labels`` may also hold the loss's
  ``ignore_index``.

Outside its domain a value gives a silently wrong loss (a binary label of -100 or 7 makes a negative
loss) or a crash inside torch (a token id >= V; on CUDA a device-side assert that kills the process),
so :func:`check_domain` raises :class:`~swift_zoo.LossInputError` with the input, the domain, how many
values fall outside and the first of them. NaN is outside every domain. The check reads the values (one
device synchronisation per checked input on an accelerator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from swift_zoo._errors import LossInputError

if TYPE_CHECKING:
    import torch

DOMAIN_KINDS = ("binary", "unit_interval", "non_negative", "index")


@dataclass(frozen=True)
class Domain:
    """A parsed ``domain=`` declaration: its kind and, for ``index``, the bound (a symbol or a size)."""

    kind: str
    bound: str | int | None = None

    @classmethod
    def parse(cls, text: str, key: str) -> Domain:
        kind, _, bound = text.partition(":")
        if kind not in DOMAIN_KINDS or (kind == "index") != bool(bound):
            message = (
                f"TensorInput {key!r}: domain must be one of 'binary', 'unit_interval', 'non_negative' or "
                f"'index:<symbol or size>' (e.g. 'index:V'), got {text!r}"
            )
            raise ValueError(message)
        if kind != "index":
            return cls(kind)
        return cls(kind, int(bound) if bound.isdigit() else bound)

    def describe(self, size: int | None = None, ignore_index: int | None = None) -> str:
        if self.kind == "binary":
            return "0 or 1"
        if self.kind == "unit_interval":
            return "values in [0, 1]"
        if self.kind == "non_negative":
            return "values >= 0"
        bound = f"{self.bound}" if size is None or isinstance(self.bound, int) else f"{self.bound}={size}"
        text = f"class indices in [0, {bound})"
        return text + (f" or ignore_index {ignore_index}" if ignore_index is not None else "")

    def outside(self, tensor: torch.Tensor, size: int | None, ignore_index: int | None) -> torch.Tensor:
        """Bool tensor: the values that fall outside the domain."""
        import torch

        if self.kind == "binary":
            return ~((tensor == 0) | (tensor == 1))
        if self.kind == "unit_interval":
            return ~((tensor >= 0) & (tensor <= 1))
        if self.kind == "non_negative":
            return ~(tensor >= 0)
        bad = (tensor < 0) | (tensor >= size) if size is not None else tensor < 0
        if tensor.is_floating_point():
            bad = bad | (tensor != torch.floor(tensor))
        if ignore_index is not None:
            bad = bad & (tensor != ignore_index)
        return bad


def check_domain(loss_name: str, where: str, domain: Domain, tensor: torch.Tensor, size: int | None,
                 ignore_index: int | None) -> None:
    """Raise :class:`LossInputError` when any value of ``tensor`` falls outside ``domain``."""
    bad = domain.outside(tensor, size, ignore_index)
    if not bool(bad.any()):
        return
    count = int(bad.sum())
    first = tuple(int(i) for i in bad.nonzero()[0])
    value = tensor[first].item()
    at = f" at position {first}" if first else ""
    message = (
        f"{loss_name}: {where} must hold {domain.describe(size, ignore_index)}; found {count} value(s) outside, "
        f"e.g. {value!r}{at}"
    )
    raise LossInputError(message)
