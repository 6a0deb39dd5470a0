"""A weighted sum of registered losses (TRL's MPO: DPO + a weighted SFT term, and the like)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl
from swift_zoo import (
    BaseLoss,
    ConfigError,
    LossExample,
    LossInputError,
    TensorInput,
    build_loss,
    get_loss,
    normalize_name,
)

ITEM_KEYS = ("type", "weight", "kwargs")
_OWNER = "weighted_sum"


def _takes_labels(loss: BaseLoss) -> bool:
    return any(spec.key == "labels" for spec in loss.inputs)


def _parse_weight(index: int, value: Any) -> float:
    where = f"losses[{index}].weight"
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0.0:
        message = f"{_OWNER}: {where} must be a finite number >= 0, got {value!r} ({type(value).__name__})"
        raise ConfigError(message, key=where, expected="a finite number >= 0", found=value)
    return number


def _parse_item(index: int, item: Any) -> tuple[str, float, dict[str, Any]]:
    where = f"losses[{index}]"
    if not isinstance(item, Mapping):
        message = (
            f"{_OWNER}: {where} must be a mapping like {{type: cross_entropy, weight: 1.0, kwargs: {{}}}}, "
            f"got {item!r} ({type(item).__name__})"
        )
        raise ConfigError(message, key=where, expected="a mapping with keys type, weight, kwargs", found=item)
    unknown = [key for key in item if key not in ITEM_KEYS]
    if unknown:
        message = (
            f"{_OWNER}: {where} has unknown key(s) {', '.join(repr(k) for k in unknown)}; "
            f"expected only {', '.join(ITEM_KEYS)} (a sub-loss's hyperparameters go under 'kwargs')"
        )
        raise ConfigError(message, key=f"{where}.{unknown[0]}", expected=f"one of: {', '.join(ITEM_KEYS)}",
                          found=unknown[0])
    if "type" not in item:
        message = f"{_OWNER}: {where} has no 'type'; expected the registered name of a loss, found keys: " + (
            ", ".join(map(str, item)) or "none"
        )
        raise ConfigError(message, key=f"{where}.type", expected="a registered loss name", found=None)
    loss_type = item["type"]
    if not isinstance(loss_type, str) or not loss_type.strip():
        message = f"{_OWNER}: {where}.type must be a registered loss name (a string), got {loss_type!r}"
        raise ConfigError(message, key=f"{where}.type", expected="a registered loss name", found=loss_type)
    weight = _parse_weight(index, item.get("weight", 1.0))
    kwargs = item.get("kwargs")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        message = f"{_OWNER}: {where}.kwargs must be a mapping of hyperparameter names, got {kwargs!r}"
        raise ConfigError(message, key=f"{where}.kwargs", expected="a mapping", found=kwargs)
    return loss_type, weight, dict(kwargs)


def _merge_inputs(terms: list[tuple[str, BaseLoss]]) -> tuple[TensorInput, ...]:
    """The union of the sub-losses' inputs; a key read by several must be declared alike."""
    merged: dict[str, TensorInput] = {}
    owner: dict[str, str] = {}
    for label, loss in terms:
        for spec in loss.inputs:
            if spec.key not in merged:
                merged[spec.key], owner[spec.key] = spec, label
                continue
            first = merged[spec.key]
            neutral = {"doc": "", "differentiable": False, "optional": False}
            if dataclasses.replace(first, **neutral) != dataclasses.replace(spec, **neutral):
                message = (
                    f"{_OWNER}: {owner[spec.key]} and {label} both read {spec.key!r} but declare it differently "
                    f"({first.describe()} vs {spec.describe()}); they cannot share one model_outputs"
                )
                raise ConfigError(message, key="losses", expected=first.describe(), found=spec.describe())
            merged[spec.key] = dataclasses.replace(
                first,
                differentiable=first.differentiable or spec.differentiable,
                optional=first.optional and spec.optional,
            )
    return tuple(merged.values())


class WeightedSumLoss(BaseLoss):
    r"""A weighted sum of registered losses, each normalised by its own unit.

    .. math::
        L = \sum_i w_i\, L_i, \qquad L_i = \frac{\sum_{u} \ell^{(i)}_u}{N_i}

    where :math:`L_i` is the registered loss ``losses[i].type`` built with ``losses[i].kwargs``
    (validated and coerced like any ``loss_kwargs``) and :math:`w_i` is ``losses[i].weight``
    (default 1.0). TRL's ``DPOConfig(loss_type=[...], loss_weights=[...])`` is this sum; MPO (Mixed
    Preference Optimization, arXiv:2411.10442) combines ``sigmoid`` DPO, ``bco_pair`` and an SFT
    term (weights 0.8, 0.2, 1.0 in TRL's documentation).

    **Normalisation.** Each term keeps its own reduction unit (``dpo`` counts pairs,
    ``cross_entropy`` tokens), so one global count cannot normalise them all. ``num_items_in_batch``
    is therefore given per sub-loss: ``None`` (each uses its local count), a mapping
    ``{index or type: count}`` naming every sub-loss, or a 1-D tensor with one count per sub-loss --
    what :meth:`count_units` returns, so summing it over micro-batches (and all-reducing it over
    ranks) gives the right value. A single number is accepted only when every sub-loss has the
    same reduction unit; it is then passed to each (right when they count the same units).

    ``count_units`` returns an int64 tensor ``[len(losses)]`` (not a 0-dim tensor): the count of
    each sub-loss. ``reduction_unit`` is the sub-losses' common unit, or ``"batch"`` when they
    differ. ``inputs`` is the union of the sub-losses' inputs (declared on the instance); each
    sub-loss validates its own inputs and receives ``labels`` only if it declares them. The
    composition is ``batch_dependent`` / ``order_dependent`` exactly when a sub-loss is.

    Metrics: ``<type>/loss`` and ``<type>/<metric>`` for each sub-loss (``<type>[<index>]`` when a
    type appears more than once). Nested ``weighted_sum`` terms are rejected: list them flat.

    .. code-block:: yaml

        training_args:
          loss_type: weighted_sum
          loss_kwargs:
            losses:
              - {type: dpo, weight: 1.0, kwargs: {beta: 0.1}}
              - {type: cross_entropy, weight: 0.2}
    """

    name = "weighted_sum"
    reference = "arXiv:2411.10442"
    equivalents = (
        trl(call("DPOConfig", loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0]),
            {"losses": [{"type": "dpo", "weight": 0.8}, {"type": "bco_pair", "weight": 0.2},
                        {"type": "sft", "weight": 1.0}]},
            settings="MPO"),
        ms_swift(flags(rlhf_type="dpo", loss_type="sigmoid bco_pair sft", loss_weights="0.8 0.2 1.0"),
                 {"losses": [{"type": "dpo", "weight": 0.8}, {"type": "bco_pair", "weight": 0.2},
                             {"type": "sft", "weight": 1.0}]},
                 settings="MPO",
                 differs="ms-swift's bco_pair subtracts a running mean delta of the rewards (see bco_pair); with a "
                         "frozen delta the terms match"),
    )
    reduction_unit = "batch"

    def __init__(self, *, losses: list[dict[str, Any]]) -> None:
        super().__init__()
        if isinstance(losses, (str, bytes, Mapping)) or not isinstance(losses, (list, tuple)) or not losses:
            message = (
                f"{_OWNER}: 'losses' must be a non-empty list of {{type, weight, kwargs}} items, "
                f"got {losses!r}"
            )
            raise ConfigError(message, key="losses", expected="a non-empty list of mappings", found=losses)
        parsed = [_parse_item(i, item) for i, item in enumerate(losses)]
        types = [normalize_name(loss_type) for loss_type, _, _ in parsed]
        labels = [t if types.count(t) == 1 else f"{t}[{i}]" for i, t in enumerate(types)]
        terms: list[BaseLoss] = []
        for index, (loss_type, _, kwargs) in enumerate(parsed):
            terms.append(self._build_term(index, loss_type, kwargs))
        self.losses = [{"type": t, "weight": w, "kwargs": k} for t, w, k in parsed]
        self.terms = torch.nn.ModuleList(terms)
        self.weights = tuple(w for _, w, _ in parsed)
        self.term_names = tuple(labels)
        self._types = tuple(types)
        self.inputs = _merge_inputs(list(zip(labels, terms)))
        units = {term.reduction_unit for term in terms}
        self.reduction_unit = units.pop() if len(units) == 1 else "batch"
        self._single_unit = len({term.reduction_unit for term in terms}) == 1
        self.batch_dependent = self._joined_reasons("batch_dependent")
        self.order_dependent = self._joined_reasons("order_dependent")

    @staticmethod
    def _build_term(index: int, loss_type: str, kwargs: dict[str, Any]) -> BaseLoss:
        where = f"losses[{index}]"
        try:
            term = build_loss(loss_type, **kwargs)
        except ConfigError as exc:
            message = f"{_OWNER}: {where} ({loss_type}): {exc}"
            raise ConfigError(message, key=f"{where}.kwargs.{exc.key}" if exc.key else f"{where}.kwargs",
                              expected=exc.expected, found=exc.found) from exc
        except KeyError as exc:  # UnknownLossError / AmbiguousNameError: keep their suggestions
            message = f"{_OWNER}: {where}.type: {exc}"
            raise ConfigError(message, key=f"{where}.type", expected="a registered loss name",
                              found=loss_type) from exc
        if isinstance(term, WeightedSumLoss):
            message = f"{_OWNER}: {where}.type is {loss_type!r}; nested weighted sums are not supported, list the terms flat"
            raise ConfigError(message, key=f"{where}.type", expected="a loss other than weighted_sum", found=loss_type)
        return term

    def _joined_reasons(self, attribute: str) -> str | None:
        reasons = [
            f"{label}: {getattr(term, attribute)}"
            for label, term in zip(self.term_names, self.terms)
            if getattr(term, attribute)
        ]
        return "; ".join(reasons) or None

    # ------------------------------------------------------------------ contract
    def forward(self, model_outputs, labels=None, *, num_items_in_batch=None) -> torch.Tensor:
        if labels is not None and not any(_takes_labels(term) for term in self.terms):
            message = f"{_OWNER}: none of its losses ({', '.join(self.term_names)}) takes labels, got labels"
            raise LossInputError(message)
        counts = self._split_num_items(num_items_in_batch)
        self._metrics = {}
        total: torch.Tensor | None = None
        recorded: dict[str, torch.Tensor] = {}
        for label, term, weight, count in zip(self.term_names, self.terms, self.weights, counts):
            value = term(model_outputs, labels if _takes_labels(term) else None, num_items_in_batch=count)
            weighted = value * weight
            total = weighted if total is None else total + weighted
            recorded[f"{label}/loss"] = value
            recorded.update({f"{label}/{key}": metric for key, metric in term.metrics.items()})
        self.record_metrics(**recorded)
        return total

    def validate(self, model_outputs: Any, labels: Any = None) -> dict[str, torch.Tensor]:
        """Each sub-loss validates what it reads; the union of what they found."""
        if labels is not None and not any(_takes_labels(term) for term in self.terms):
            message = f"{_OWNER}: none of its losses ({', '.join(self.term_names)}) takes labels, got labels"
            raise LossInputError(message)
        found: dict[str, torch.Tensor] = {}
        for term in self.terms:
            found.update(term.validate(model_outputs, labels if _takes_labels(term) else None))
        return found

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        """One count per sub-loss, int64 ``[len(losses)]``: sum it over micro-batches and ranks."""
        counts = [
            torch.as_tensor(term.count_units(model_outputs, labels if _takes_labels(term) else None)).reshape(())
            for term in self.terms
        ]
        device = counts[0].device
        return torch.stack([c.to(device=device, dtype=torch.int64) for c in counts])

    # ------------------------------------------------------------------ helpers
    def _split_num_items(self, num_items_in_batch: Any) -> list[Any]:
        n = len(self.terms)
        if num_items_in_batch is None:
            return [None] * n
        if isinstance(num_items_in_batch, Mapping):
            return self._counts_from_mapping(num_items_in_batch)
        if isinstance(num_items_in_batch, torch.Tensor) and num_items_in_batch.numel() == n and n > 1:
            if num_items_in_batch.dim() != 1:
                message = (
                    f"{_OWNER}: num_items_in_batch as a tensor must be 0-dim or 1-D with one count per loss "
                    f"({n}), got shape {tuple(num_items_in_batch.shape)}"
                )
                raise LossInputError(message)
            return list(num_items_in_batch.unbind(0))
        is_scalar = (isinstance(num_items_in_batch, (int, float)) and not isinstance(num_items_in_batch, bool)) or (
            isinstance(num_items_in_batch, torch.Tensor) and num_items_in_batch.numel() == 1
        )
        if not is_scalar:
            shape = tuple(num_items_in_batch.shape) if isinstance(num_items_in_batch, torch.Tensor) else None
            found = f"a tensor of shape {shape}" if shape is not None else repr(num_items_in_batch)
            message = (
                f"{_OWNER}: num_items_in_batch must be None, a mapping {{index or type: count}}, a tensor of "
                f"{n} counts (one per loss, as count_units returns) or, when all losses share a unit, one "
                f"number; got {found}"
            )
            raise LossInputError(message)
        if not self._single_unit:
            units = ", ".join(f"{label}: {term.reduction_unit}" for label, term in zip(self.term_names, self.terms))
            message = (
                f"{_OWNER}: num_items_in_batch={num_items_in_batch!r} is a single count, but the losses count "
                f"different units ({units}), so one number cannot normalise them all. Expected a mapping "
                "{index or type: count} or the per-loss tensor of count_units summed over micro-batches and "
                "ranks (or None for local counts)"
            )
            raise LossInputError(message)
        return [num_items_in_batch] * n

    def _counts_from_mapping(self, counts: Mapping[Any, Any]) -> list[Any]:
        n = len(self.terms)
        found: dict[int, Any] = {}
        for key, value in counts.items():
            if isinstance(key, int) and not isinstance(key, bool):
                if not 0 <= key < n:
                    message = f"{_OWNER}: num_items_in_batch key {key} is out of range; expected an index 0..{n - 1}"
                    raise LossInputError(message)
                index = key
            elif isinstance(key, str):
                wanted = normalize_name(key)
                matches = [i for i, t in enumerate(self._types) if t == wanted]
                if len(matches) != 1:
                    problem = "names no loss" if not matches else f"names {len(matches)} losses; use their indices"
                    message = (
                        f"{_OWNER}: num_items_in_batch key {key!r} {problem}; expected an index 0..{n - 1} or "
                        f"one of the types {', '.join(self._types)}"
                    )
                    raise LossInputError(message)
                index = matches[0]
            else:
                message = f"{_OWNER}: num_items_in_batch keys must be indices or types, got {key!r}"
                raise LossInputError(message)
            if index in found:
                message = f"{_OWNER}: num_items_in_batch gives loss {index} ({self.term_names[index]}) twice"
                raise LossInputError(message)
            found[index] = value
        missing = [self.term_names[i] for i in range(n) if i not in found]
        if missing:
            message = (
                f"{_OWNER}: num_items_in_batch must give a count for every loss; missing "
                f"{', '.join(missing)} (expected keys: indices 0..{n - 1} or types {', '.join(self._types)})"
            )
            raise LossInputError(message)
        return [found[i] for i in range(n)]

    # ------------------------------------------------------------------ examples
    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        return {
            "losses": [
                {"type": "dpo", "weight": 1.0, "kwargs": {"beta": 0.1}},
                {"type": "cross_entropy", "weight": 0.2, "kwargs": {"label_smoothing": 0.1}},
            ]
        }

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        """The example inputs of :meth:`example_kwargs`' losses, merged (the first wins on a shared key)."""
        outputs: dict[str, torch.Tensor] = {}
        labels = None
        for item in cls.example_kwargs()["losses"]:
            example = get_loss(item["type"]).example_inputs(
                batch_size=batch_size, generator=generator, dtype=dtype, device=device
            )
            for key, value in example.model_outputs.items():
                outputs.setdefault(key, value)
            labels = example.labels if labels is None else labels
        return LossExample(outputs, labels)
