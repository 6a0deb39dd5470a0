"""``BaseLoss``: the contract every swift zoo loss implements. Its docstring is the contract."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_zoo._equivalence import Equivalence
from swift_zoo._errors import LossInputError
from swift_zoo.losses._inputs import LossExample, TensorInput, UnitLosses, validate_inputs
from swift_zoo.losses._masking import guard_masked_gradients
from swift_zoo.losses._unit_count import check_unit_count

REDUCTION_UNITS = ("token", "sequence", "pair", "sample", "group", "query", "batch")
class BaseLoss(torch.nn.Module):
    """A training objective: ``forward(model_outputs, labels=None, *, num_items_in_batch=None)``.

    **What a subclass declares** (class attributes):

    * ``name`` -- the registry name (lower snake case); ``aliases`` optional.
    * ``inputs`` -- a tuple of :class:`TensorInput`: the keys read from ``model_outputs`` (and
      ``"labels"``), symbolic shapes, dtype kind, which are differentiable, which optional, and
      which mask which. Inputs are validated before any arithmetic.
    * ``reduction_unit`` -- what one per-unit loss is: ``token``, ``sequence``, ``pair``,
      ``sample``, ``group``, ``query`` (or ``batch`` for a loss that is one number per batch).
    * ``reference`` -- the paper, e.g. ``"arXiv:2305.18290"``; the class docstring gives the formula,
      defaults, inputs and a YAML snippet.
    * ``batch_symbol`` -- the symbol of the batch dimension (dim 0 of every batched input), ``"B"``.
    * ``order_dependent`` / ``batch_dependent`` -- ``None``, or the reason why permuting the batch /
      splitting it into micro-batches changes the loss by design (e.g. in-batch negatives).
    * ``equivalents`` -- a tuple of :class:`~swift_zoo.Equivalence`: which names in TRL, verl, ms-swift, Liger
      it equals (with which zoo kwargs and library settings), and where it differs and why.

    **What a subclass implements**:

    * ``per_unit_loss(inputs) -> UnitLosses(losses, mask)`` -- one loss per unit (any shape) and the
      bool mask of units that count. ``inputs`` maps each declared key (``"labels"`` included) to
      its validated tensor. Compute in at least float32 (:func:`swift_zoo.ops.upcast`).
    * ``example_inputs(...)`` (classmethod) -- small valid inputs for the conformance suite.
    * optionally ``count_units(model_outputs, labels)`` -- the local number of units, cheaply
      (the default runs ``per_unit_loss`` without gradients).

    **The one normalisation rule** (owned here, not by subclasses)::

        loss = sum(per-unit losses over counted units) / N

    with ``N = num_items_in_batch`` when given (the number of units in the whole accumulated,
    all-rank batch: the sum of ``count_units`` over micro-batches and ranks) and the local count
    otherwise. Summing micro-batch losses computed with the global ``N`` gives the full-batch loss
    and gradient exactly. A batch with no counted unit gives 0, not NaN. ``num_items_in_batch`` must be an
    exact whole count (``swift_zoo.losses._unit_count``: no NaN, infinity, fraction, bf16/fp16 tensor).

    **Masked positions never reach the gradient**: before ``per_unit_loss`` runs, every differentiable
    input declared ``masked_by`` a mask is guarded (:func:`~swift_zoo.ops.zero_gradient_where`), so its
    gradient at the positions the mask ignores is exactly 0, even when they hold NaN or Inf.

    **Metrics**: after each call, ``loss.metrics`` holds detached 0-dim tensors (rewards, margins,
    accuracies, clip fractions...), recorded by the subclass with :meth:`record_metrics`.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    inputs: ClassVar[tuple[TensorInput, ...]] = ()
    reduction_unit: ClassVar[str] = "token"
    batch_symbol: ClassVar[str] = "B"
    ignore_index: int = -100
    order_dependent: ClassVar[str | None] = None
    batch_dependent: ClassVar[str | None] = None
    equivalents: ClassVar[tuple[Equivalence, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self._metrics: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ contract
    def forward(
        self,
        model_outputs: Mapping[str, torch.Tensor],
        labels: torch.Tensor | None = None,
        *,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        denominator = self._check_num_items(num_items_in_batch)
        self._metrics = {}
        units = self.per_unit_loss(self.guard(inputs))
        return self.reduce(units, denominator)

    def guard(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Validated ``inputs`` with every masked differentiable input guarded: NaN or Inf at the positions its
        mask ignores never reach its gradient. ``forward`` applies it; a wrapper that transforms inputs before
        calling an inner loss (``matryoshka`` normalising slices) applies it first."""
        return guard_masked_gradients(self.inputs, inputs, self.ignore_index)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        message = f"{type(self).__name__} must implement per_unit_loss(inputs) -> UnitLosses"
        raise NotImplementedError(message)

    @classmethod
    def example_inputs(
        cls,
        *,
        batch_size: int = 4,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> LossExample:
        message = f"{cls.__name__} must implement the classmethod example_inputs(...) -> LossExample"
        raise NotImplementedError(message)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Constructor kwargs for the instance the conformance suite builds from the class."""
        return {}

    # ------------------------------------------------------------------- helpers
    def validate(self, model_outputs: Any, labels: Any = None) -> dict[str, torch.Tensor]:
        """Validate against ``inputs``; return ``{key: tensor}`` (``"labels"`` included if declared)."""
        if labels is not None and not any(spec.key == "labels" for spec in self.inputs):
            message = f"{self.display_name}: takes no labels (it reads only model_outputs), got labels"
            raise LossInputError(message)
        return validate_inputs(self.display_name, self.inputs, model_outputs, labels, ignore_index=self.ignore_index)

    def count_units(self, model_outputs: Mapping[str, torch.Tensor],
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """The local number of counted units (an int64 0-dim tensor): sum it to get ``num_items_in_batch``."""
        inputs = self.validate(model_outputs, labels)
        with torch.no_grad():
            units = self.per_unit_loss(inputs)
        if units.mask is None:
            return torch.tensor(units.losses.numel(), device=units.losses.device)
        return units.mask.sum()

    def count_units_from_labels(self, labels: torch.Tensor) -> torch.Tensor | None:
        """The unit count from ``labels`` alone, before any forward pass, or ``None``.

        Derived from the declarations: a token-level loss whose only mask is ``labels`` (role
        ``labels``), aligned with ``mask_shift`` 0 or 1, counts its non-ignored (shifted) labels.
        Trainers use it to compute ``num_items_in_batch`` over an accumulation window.
        """
        has_labels = any(spec.key == "labels" and spec.role == "labels" for spec in self.inputs)
        masks = {spec.masked_by for spec in self.inputs if spec.masked_by}
        if self.reduction_unit != "token" or not has_labels or masks - {"labels"}:
            return None
        shifts = {spec.mask_shift for spec in self.inputs if spec.masked_by == "labels"}
        if shifts == {1}:
            from swift_zoo.ops import shift_labels

            return (shift_labels(labels, self.ignore_index) != self.ignore_index).sum()
        if shifts <= {0}:
            return (labels != self.ignore_index).sum()
        return None

    def reduce(self, units: UnitLosses, num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor:
        losses, mask = units
        if mask is None:
            total = losses.sum()
            count = losses.numel()
        else:
            mask = mask.to(device=losses.device, dtype=torch.bool)
            total = torch.where(mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device)).sum()
            count = mask.sum()
        if num_items_in_batch is None:
            denominator = torch.clamp(torch.as_tensor(count, device=losses.device), min=1)
        elif isinstance(num_items_in_batch, torch.Tensor):
            denominator = num_items_in_batch.to(losses.device)
        else:
            denominator = num_items_in_batch
        return total / denominator

    def _check_num_items(self, num_items_in_batch: Any) -> Any:
        """``num_items_in_batch`` checked to be an exact, positive, whole count (``_unit_count.check_unit_count``)."""
        return None if num_items_in_batch is None else check_unit_count(self.display_name, num_items_in_batch)

    def record_metrics(self, **values: torch.Tensor | float) -> None:
        """Record detached diagnostics for this call (read back through :attr:`metrics`)."""
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.detach()
                if value.numel() != 1:
                    value = value.float().mean()
                value = value.reshape(())
            else:
                value = torch.tensor(float(value))
            self._metrics[key] = value

    @property
    def metrics(self) -> dict[str, torch.Tensor]:
        """Detached 0-dim diagnostics of the last call (empty before the first)."""
        return dict(self._metrics)

    @property
    def display_name(self) -> str:
        return self.name or type(self).__name__

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments, read back from attributes of the same name."""
        params = inspect.signature(type(self).__init__).parameters
        return {
            key: getattr(self, key)
            for key, p in params.items()
            if key != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and hasattr(self, key)
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
