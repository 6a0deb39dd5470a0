"""What a check runs on: a loss (instance or class) or an optimizer (class and its kwargs).

Checks accept what a user has at hand -- a loss instance, a loss class, a registered name, an
optimizer class or an ``(optimizer class, kwargs)`` pair -- and turn it into a small record here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from swift_zoo._config import build_advantage, build_loss
from swift_zoo._registry import REGISTRY
from swift_zoo.advantages import BaseAdvantage
from swift_zoo.losses import BaseLoss


def exemptions_of(obj: Any) -> dict[str, str]:
    """The ``conformance_exemptions`` a class (or the class of an instance, or of a registered name) declares."""
    if isinstance(obj, str):
        entry = None
        for kind in ("loss", "optimizer", "advantage"):
            try:
                entry = REGISTRY.resolve(kind, obj)
                break
            except KeyError:
                continue
        obj = REGISTRY.load_entry(entry) if entry is not None else obj
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], Mapping):
        obj = obj[0]
    cls = obj if isinstance(obj, type) else type(obj)
    declared = getattr(cls, "conformance_exemptions", None) or {}
    if not isinstance(declared, Mapping):
        message = (
            f"{cls.__name__}.conformance_exemptions must be a dict {{check name: reason}}, "
            f"got {type(declared).__name__}"
        )
        raise TypeError(message)
    return {str(k): str(v) for k, v in declared.items()}


def is_loss_like(obj: Any) -> bool:
    return isinstance(obj, BaseLoss) or (isinstance(obj, type) and issubclass(obj, BaseLoss))


def is_advantage_like(obj: Any) -> bool:
    return isinstance(obj, BaseAdvantage) or (isinstance(obj, type) and issubclass(obj, BaseAdvantage))


def _instance(obj: Any, kind: str, base: type, builder: Any, base_path: str) -> Any:
    """``obj`` itself when an instance of ``base``, else built from a class / registered name of ``kind``
    with its ``example_kwargs()``."""
    if isinstance(obj, base):
        return obj
    cls = REGISTRY.load(kind, obj) if isinstance(obj, str) else obj
    if not (isinstance(cls, type) and issubclass(cls, base)):
        message = f"expected a {base_path} instance or subclass, got {obj!r}"
        raise TypeError(message)
    return builder(cls, **dict(cls.example_kwargs()))


def advantage_instance(obj: Any) -> BaseAdvantage:
    """An estimator instance: ``obj`` itself, or built from a class / registered name with its ``example_kwargs()``."""
    return _instance(obj, "advantage", BaseAdvantage, build_advantage, "swift_zoo.advantages.BaseAdvantage")


def is_optimizer_like(obj: Any) -> bool:
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], Mapping):
        obj = obj[0]
    return isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)


def loss_instance(obj: Any) -> BaseLoss:
    """A loss instance: ``obj`` itself, or built from a class / registered name with its ``example_kwargs()``."""
    return _instance(obj, "loss", BaseLoss, build_loss, "swift_zoo.BaseLoss")


def loss_label(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__name__


@dataclass
class OptimizerSubject:
    """An optimizer class, the kwargs the suite builds it with, and what its spec declares."""

    cls: type[torch.optim.Optimizer]
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    hooks: tuple[str, ...] = ()
    registered_name: str | None = None

    @property
    def accepted_kwargs(self) -> set[str]:
        params = inspect.signature(self.cls.__init__).parameters
        return {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def build(self, model_or_params: Any, **overrides: Any) -> torch.optim.Optimizer:
        """``swift_zoo.build_optimizer(cls, model_or_params, **kwargs, **overrides)``, in training mode."""
        from swift_zoo._config import build_optimizer

        target = self.registered_name or self.cls
        optimizer = build_optimizer(target, model_or_params, **{**self.kwargs, **overrides})
        enter_training_mode(optimizer, self.hooks)
        return optimizer


def enter_training_mode(optimizer: torch.optim.Optimizer, hooks: tuple[str, ...] = ()) -> None:
    """Call ``optimizer.train()`` before stepping when the optimizer has train/eval hooks (schedule-free).

    The spec's ``hooks`` declare them; an optimizer class with a ``train`` method is treated alike, so
    unregistered classes work too. A declared hook that is missing is an error.
    """
    train = getattr(optimizer, "train", None)
    if "train" in hooks and not callable(train):
        message = f"{type(optimizer).__name__} declares the hook 'train' but has no train() method"
        raise TypeError(message)
    if callable(train):
        train()


def optimizer_subject(obj: Any, kwargs: Mapping[str, Any] | None = None) -> OptimizerSubject:
    """An :class:`OptimizerSubject` from a class, a registered name, a ``(class, kwargs)`` pair or a subject."""
    if isinstance(obj, OptimizerSubject):
        if kwargs is not None:
            return OptimizerSubject(obj.cls, {**obj.kwargs, **kwargs}, obj.label, obj.hooks, obj.registered_name)
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], Mapping):
        obj, extra = obj
        kwargs = {**extra, **(kwargs or {})}
    registered_name = None
    hooks: tuple[str, ...] = ()
    if isinstance(obj, str):
        entry = REGISTRY.resolve("optimizer", obj)
        registered_name = entry.qualified_name
        hooks = tuple(getattr(entry.spec, "hooks", ()) or ())
        cls = REGISTRY.load_entry(entry)
        label = entry.qualified_name
    else:
        cls = obj
        label = getattr(cls, "__name__", repr(cls))
    if isinstance(cls, torch.optim.Optimizer):
        message = (
            f"pass the optimizer class, not an instance ({type(cls).__name__}): the suite builds "
            "fresh optimizers on its own tiny models"
        )
        raise TypeError(message)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        message = f"expected a torch.optim.Optimizer subclass or a registered optimizer name, got {obj!r}"
        raise TypeError(message)
    hooks = hooks or tuple(getattr(cls, "hooks", ()) or ())
    if kwargs is None:
        example = getattr(cls, "example_kwargs", None)
        kwargs = dict(example()) if callable(example) else {}
    return OptimizerSubject(cls, dict(kwargs), label, hooks, registered_name)
