"""Matryoshka representation learning: any embedding loss on several leading slices of the embeddings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import flags, ms_swift
from swift_zoo import BaseLoss, ConfigError, LossExample, LossInputError, build_loss, get_loss

_OWNER = "matryoshka"
EMBEDDING_SYMBOL = "D"


def _parse_dims(dims: Any, weights: Any) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``dims`` as ``{dim: weight}`` (ms-swift ``--mrl_dims``) or a list of ints with optional ``weights``."""
    if isinstance(dims, Mapping):
        if weights is not None:
            message = f"{_OWNER}: give the weights either in dims ({{dim: weight}}) or in weights, not both"
            raise ConfigError(message, key="weights", expected="None when dims is a mapping", found=weights)
        pairs = list(dims.items())
    elif isinstance(dims, (list, tuple)) and dims:
        if weights is None:
            weights = [1.0] * len(dims)
        if not isinstance(weights, (list, tuple)) or len(weights) != len(dims):
            message = f"{_OWNER}: weights must be a list with one weight per dim ({len(dims)}), got {weights!r}"
            raise ConfigError(message, key="weights", expected=f"a list of {len(dims)} numbers", found=weights)
        pairs = list(zip(dims, weights))
    else:
        message = f"{_OWNER}: dims must be a non-empty list of ints or a mapping {{dim: weight}}, got {dims!r}"
        raise ConfigError(message, key="dims", expected="a non-empty list of ints or {dim: weight}", found=dims)
    parsed_dims, parsed_weights = [], []
    for dim, weight in pairs:
        try:  # ms-swift's JSON gives string keys: {"64": 1.0}
            number = int(dim) if not isinstance(dim, bool) and float(dim) == int(float(dim)) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number < 1:
            message = f"{_OWNER}: each dim must be an integer >= 1, got {dim!r}"
            raise ConfigError(message, key="dims", expected="integers >= 1", found=dim)
        try:
            value = float(weight)
        except (TypeError, ValueError):
            value = math.nan
        if isinstance(weight, bool) or not math.isfinite(value) or value < 0.0:
            message = f"{_OWNER}: the weight of dim {number} must be a finite number >= 0, got {weight!r}"
            raise ConfigError(message, key="weights", expected="finite numbers >= 0", found=weight)
        parsed_dims.append(number)
        parsed_weights.append(value)
    if len(set(parsed_dims)) != len(parsed_dims):
        message = f"{_OWNER}: dims must be distinct, got {parsed_dims}"
        raise ConfigError(message, key="dims", expected="distinct integers", found=parsed_dims)
    return tuple(parsed_dims), tuple(parsed_weights)


def _build_inner(loss: Any) -> BaseLoss:
    if isinstance(loss, str):
        loss_type, kwargs = loss, {}
    elif isinstance(loss, Mapping) and isinstance(loss.get("type"), str) and set(loss) <= {"type", "kwargs"}:
        loss_type, kwargs = loss["type"], dict(loss.get("kwargs") or {})
    else:
        message = f"{_OWNER}: loss must be a registered name or {{type: <name>, kwargs: {{...}}}}, got {loss!r}"
        raise ConfigError(message, key="loss", expected="a name or a mapping with keys type, kwargs", found=loss)
    try:
        inner = build_loss(loss_type, **kwargs)
    except ConfigError as exc:
        message = f"{_OWNER}: loss ({loss_type}): {exc}"
        raise ConfigError(message, key=f"loss.kwargs.{exc.key}" if exc.key else "loss.kwargs",
                          expected=exc.expected, found=exc.found) from exc
    except KeyError as exc:  # an unknown or ambiguous name: keep its suggestions
        message = f"{_OWNER}: loss: {exc}"
        raise ConfigError(message, key="loss.type", expected="a registered loss name", found=loss_type) from exc
    keys = [spec.key for spec in inner.inputs if spec.shape and spec.shape[-1] == EMBEDDING_SYMBOL]
    if not keys:
        shapes = ", ".join(f"{spec.key} {spec.shape_text}" for spec in inner.inputs)
        message = (
            f"{_OWNER}: loss {loss_type!r} reads no embedding (an input whose last dimension is "
            f"{EMBEDDING_SYMBOL!r}); found {shapes}. Expected an embedding loss such as infonce or contrastive"
        )
        raise ConfigError(message, key="loss.type", expected="an embedding loss", found=loss_type)
    return inner


class MatryoshkaLoss(BaseLoss):
    r"""Matryoshka representation learning: one embedding loss on several leading slices, weighted.

    .. math::
        L = \sum_{d \in \text{dims}} w_d\, L_{\text{inner}}\big(\hat e_{[:d]}\big), \qquad
        \hat e_{[:d]} = \frac{e_{[:d]}}{\lVert e_{[:d]} \rVert_2}\ \ (\text{``normalize=True``})

    where every input of the inner loss whose last dimension is the embedding dimension ``D``
    (``query_embeddings``, ``embeddings_a``, ``negative_embeddings``...) is cut to its first :math:`d`
    coordinates (and L2-normalised again, as ms-swift does; ``normalize=False`` keeps the raw slice).
    The model then keeps useful embeddings at every listed size.

    Composition as ``weighted_sum``: the inner loss is any registered embedding loss (``loss`` is its
    name or ``{type, kwargs}``), built and validated like ``loss_kwargs``. Every slice counts the same
    units, so the wrapper has the inner loss's ``reduction_unit``, ``count_units``, ``inputs``,
    ``batch_dependent`` and ``order_dependent``, and ``num_items_in_batch`` is passed unchanged to each
    slice. A dim larger than the embedding raises (ms-swift skips it with a warning).

    ``dims`` is ms-swift's ``--mrl_dims`` mapping ``{dim: weight}`` (string keys accepted), or a list of
    dims with ``weights`` (default 1 each; sentence-transformers' ``matryoshka_dims`` /
    ``matryoshka_weights``).

    Paper: Kusupati et al., "Matryoshka Representation Learning", arXiv:2205.13147. ms-swift
    ``--mrl_dims`` (``EmbeddingTrainer``). Defaults: ``weights=None`` (1 each), ``normalize=True``.

    Metrics: ``dim_<d>/loss`` and ``dim_<d>/<metric>`` of the inner loss for each slice.

    .. code-block:: yaml

        training_args:
          loss_type: matryoshka
          loss_kwargs:
            loss: {type: infonce, kwargs: {temperature: 0.05}}
            dims: {768: 1.0, 256: 1.0, 64: 1.0}
    """

    name = "matryoshka"
    aliases = ("mrl",)
    reference = "arXiv:2205.13147"
    equivalents = (
        ms_swift(flags(task_type="embedding", loss_type="infonce", mrl_dims="'{\"64\": 1.0, \"32\": 1.0}'"),
                 {"loss": "infonce", "dims": {64: 1.0, 32: 1.0}},
                 differs="ms-swift skips a dim larger than the embedding with a warning; the zoo raises"),
    )
    reduction_unit = "query"

    def __init__(self, *, loss: str | dict[str, Any], dims: list[int] | dict[int, float],
                 weights: list[float] | None = None, normalize: bool = True) -> None:
        super().__init__()
        parsed_dims, parsed_weights = _parse_dims(dims, weights)
        if not isinstance(normalize, bool):
            message = f"{_OWNER}: normalize must be a bool, got {normalize!r}"
            raise ConfigError(message, key="normalize", expected="a bool", found=normalize)
        self.inner = _build_inner(loss)
        self.loss = loss
        self.dims = dims
        self.weights = weights
        self.normalize = normalize
        self.slices = tuple(zip(parsed_dims, parsed_weights))
        self.inputs = self.inner.inputs
        self.reduction_unit = self.inner.reduction_unit
        self.batch_dependent = self.inner.batch_dependent
        self.order_dependent = self.inner.order_dependent
        self._embedding_keys = tuple(
            spec.key for spec in self.inner.inputs if spec.shape and spec.shape[-1] == EMBEDDING_SYMBOL)

    def forward(self, model_outputs, labels=None, *, num_items_in_batch=None) -> torch.Tensor:
        found = self.inner.guard(self.inner.validate(model_outputs, labels))
        width = next(found[key].shape[-1] for key in self._embedding_keys if key in found)
        too_wide = [dim for dim, _ in self.slices if dim > width]
        if too_wide:
            message = (
                f"{_OWNER}: dims {too_wide} exceed the embedding dimension D={width} of "
                f"{', '.join(k for k in self._embedding_keys if k in found)}; expected dims <= {width}"
            )
            raise LossInputError(message)
        self._metrics = {}
        total: torch.Tensor | None = None
        recorded: dict[str, torch.Tensor] = {}
        for dim, weight in self.slices:
            sliced = dict(model_outputs)
            for key in self._embedding_keys:
                if key in found:
                    part = found[key][..., :dim]
                    sliced[key] = F.normalize(part, p=2.0, dim=-1) if self.normalize else part
            value = self.inner(sliced, labels, num_items_in_batch=num_items_in_batch)
            total = value * weight if total is None else total + value * weight
            recorded[f"dim_{dim}/loss"] = value
            recorded.update({f"dim_{dim}/{key}": metric for key, metric in self.inner.metrics.items()})
        self.record_metrics(**recorded)
        return total

    def validate(self, model_outputs: Any, labels: Any = None) -> dict[str, torch.Tensor]:
        return self.inner.validate(model_outputs, labels)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        return self.inner.count_units(model_outputs, labels)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        return {"loss": {"type": "infonce", "kwargs": {"temperature": 0.1}}, "dims": {8: 1.0, 4: 0.5}}

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        """The example inputs of :meth:`example_kwargs`' inner loss (embedding dimension 8)."""
        inner = get_loss(cls.example_kwargs()["loss"]["type"])
        return inner.example_inputs(batch_size=batch_size, generator=generator, dtype=dtype, device=device)
