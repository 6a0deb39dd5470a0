"""Declared inputs of a loss: which tensors it reads, their symbolic shapes, and validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from swift_zoo._errors import LossInputError
from swift_zoo.losses._domains import Domain, check_domain

if TYPE_CHECKING:
    import torch

DTYPE_KINDS = ("float", "int", "bool", "mask")


@dataclass(frozen=True)
class TensorInput:
    """One tensor a loss reads from ``model_outputs`` (or ``labels`` when ``key == "labels"``).

    :param key: the key in ``model_outputs``; ``"labels"`` means the ``labels`` argument.
    :param shape: symbolic sizes, e.g. ``("B", "T", "V")``; an ``int`` fixes a size, ``"*"`` accepts
        any size without binding it. The same symbol must have the same size in every input.
    :param dtype: ``"float"``, ``"int"``, ``"bool"`` or ``"mask"`` (bool, int or float 0/1).
    :param differentiable: gradients flow to it (the suite checks they arrive).
    :param optional: may be absent.
    :param role: ``"data"``, ``"mask"`` (positions where it is 0 are ignored) or ``"labels"``
        (positions equal to the loss's ``ignore_index`` are ignored).
    :param masked_by: key of the mask / labels input that masks this one; position ``t`` of this
        input is ignored when position ``t + mask_shift`` of the mask is ignored, or out of range
        (causal LM logits: ``masked_by="labels", mask_shift=1``).
    :param mask_shift: see ``masked_by``.
    :param domain: the values it may hold, checked before any arithmetic (:mod:`swift_zoo.losses._domains`):
        ``"binary"`` (0 or 1), ``"unit_interval"`` ([0, 1]), ``"non_negative"``, or ``"index:V"`` (integer class
        indices in ``[0, V)`` for a shape symbol ``V`` or a size; a ``labels`` input may also hold
        ``ignore_index``). ``None``: any value.
    :param doc: one line for ``swift-zoo info``.
    """

    key: str
    shape: tuple[str | int, ...]
    dtype: str = "float"
    differentiable: bool = False
    optional: bool = False
    role: str = "data"
    masked_by: str | None = None
    mask_shift: int = 0
    domain: str | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.domain is not None:
            Domain.parse(self.domain, self.key)
        if self.dtype not in DTYPE_KINDS:
            message = f"TensorInput {self.key!r}: dtype must be one of {DTYPE_KINDS}, got {self.dtype!r}"
            raise ValueError(message)
        if self.role not in {"data", "mask", "labels"}:
            message = f"TensorInput {self.key!r}: role must be data, mask or labels, got {self.role!r}"
            raise ValueError(message)

    @property
    def shape_text(self) -> str:
        return "[" + ", ".join(str(s) for s in self.shape) + "]"

    def describe(self) -> str:
        flags = [self.dtype]
        if self.differentiable:
            flags.append("differentiable")
        if self.optional:
            flags.append("optional")
        if self.domain is not None:
            flags.append(f"domain {self.domain}")
        return f"{self.key} {self.shape_text} ({', '.join(flags)})"


class UnitLosses(NamedTuple):
    """What a loss computes before reduction: one value per unit, and which units count.

    ``losses`` may have any shape; ``mask`` (bool, same shape) marks the units that count (``None``:
    all). Masked entries are excluded with ``torch.where``, so NaN or Inf there do not leak into the
    value; :class:`BaseLoss` keeps them out of the gradients of inputs declared ``masked_by``.
    """

    losses: torch.Tensor
    mask: torch.Tensor | None = None


class LossExample(NamedTuple):
    """Small valid inputs for a loss, built by ``BaseLoss.example_inputs``."""

    model_outputs: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None


def _dtype_matches(kind: str, tensor: torch.Tensor) -> bool:
    import torch

    if kind == "float":
        return tensor.is_floating_point()
    if kind == "int":
        return not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool
    if kind == "bool":
        return tensor.dtype == torch.bool
    return not tensor.is_complex()  # mask: bool, int or float


def validate_inputs(
    loss_name: str,
    declared: tuple[TensorInput, ...],
    model_outputs: Any,
    labels: Any,
    *,
    ignore_index: int = -100,
) -> dict[str, torch.Tensor]:
    """Check presence, type, dtype kind, symbolic shapes and value domains; return ``{key: tensor}``.

    Raises :class:`LossInputError` naming the loss, the key, what was expected and what came.
    Inputs not declared ``differentiable`` come back detached. ``ignore_index``: the value a ``labels``
    input may hold besides its ``index:`` domain.
    """
    import torch

    if not isinstance(model_outputs, Mapping):
        message = (
            f"{loss_name}: model_outputs must be a mapping of tensors (a dict or a transformers "
            f"ModelOutput), got {type(model_outputs).__name__}"
        )
        raise LossInputError(message)
    bound: dict[str, tuple[int, str]] = {}
    found: dict[str, torch.Tensor] = {}
    for spec in declared:
        where = "labels" if spec.key == "labels" else f"model_outputs[{spec.key!r}]"
        value = labels if spec.key == "labels" else model_outputs.get(spec.key)
        if value is None:
            if spec.optional:
                continue
            present = ", ".join(sorted(map(str, model_outputs.keys()))) or "none"
            message = (
                f"{loss_name}: missing {where}; expected a {spec.dtype} tensor of shape "
                f"{spec.shape_text}. model_outputs has keys: {present}"
            )
            raise LossInputError(message)
        if not isinstance(value, torch.Tensor):
            message = (
                f"{loss_name}: {where} must be a torch.Tensor of shape {spec.shape_text}, "
                f"got {type(value).__name__}"
            )
            raise LossInputError(message)
        if not _dtype_matches(spec.dtype, value):
            message = f"{loss_name}: {where} must be a {spec.dtype} tensor, got dtype {value.dtype}"
            raise LossInputError(message)
        if value.dim() != len(spec.shape):
            message = (
                f"{loss_name}: {where} expected shape {spec.shape_text} ({len(spec.shape)} dims), "
                f"got {tuple(value.shape)} ({value.dim()} dims)"
            )
            raise LossInputError(message)
        for symbol, size in zip(spec.shape, value.shape):
            if symbol == "*":
                continue
            if isinstance(symbol, int):
                if size != symbol:
                    message = (
                        f"{loss_name}: {where} expected shape {spec.shape_text}, got {tuple(value.shape)}"
                    )
                    raise LossInputError(message)
                continue
            if symbol in bound and bound[symbol][0] != size:
                first_size, first_key = bound[symbol]
                message = (
                    f"{loss_name}: {where} expected shape {spec.shape_text} with {symbol}={first_size} "
                    f"(as in {first_key}), got {tuple(value.shape)}"
                )
                raise LossInputError(message)
            bound.setdefault(symbol, (size, where))
        # declared non-differentiable: never a path for gradients (e.g. reference log-probs with a graph)
        found[spec.key] = value.detach() if (value.requires_grad and not spec.differentiable) else value
    for spec in declared:
        if spec.domain is None or spec.key not in found:
            continue
        domain = Domain.parse(spec.domain, spec.key)
        size = None
        if isinstance(domain.bound, int):
            size = domain.bound
        elif domain.bound is not None:
            if domain.bound not in bound:
                message = (
                    f"{loss_name}: the input {spec.key!r} declares domain {spec.domain!r}, but no input present binds "
                    f"the symbol {domain.bound!r}"
                )
                raise LossInputError(message)
            size = bound[domain.bound][0]
        where = "labels" if spec.key == "labels" else f"model_outputs[{spec.key!r}]"
        check_domain(loss_name, where, domain, found[spec.key], size, ignore_index if spec.role == "labels" else None)
    return found
