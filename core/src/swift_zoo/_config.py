"""Building losses, optimizers and schedules from names, kwargs and config files.

Config mirrors ms-swift and the HF Trainer::

    training_args:
      loss_type: dpo
      loss_kwargs: {beta: 0.1}
      advantage_type: grpo           # policy-gradient losses: the estimator of their advantages
      optimizer_type: galore_adamw
      optimizer_kwargs: {lr: 2.0e-5, rank: 64}
      lr_scheduler_type: cosine
      lr_scheduler_kwargs: {warmup_steps: 10}
      max_steps: 1000
      max_grad_norm: 1.0
      nonfinite_grads: skip          # or raise: the optimizer's policy for NaN/Inf gradients

Kwargs are checked against the target's signature before anything is built: an unknown kwarg
lists the accepted ones and the closest match; a value is converted to the annotated type where
that is lossless (YAML 1.1 reads ``2e-5`` as the *string* ``"2e-5"``: it becomes the float
``2e-05`` for a ``float`` parameter), and rejected with the key, the expected type and the value
otherwise. This module imports torch only when it builds something.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from swift_zoo._config_file import read_config_file
from swift_zoo._errors import ConfigError, close_matches
from swift_zoo._registry import REGISTRY
from swift_zoo._validation import require_non_negative, require_positive

_MISSING = object()
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


# ------------------------------------------------------------------ value coercion
def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def coerce_value(owner: str, key: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to ``annotation`` where lossless, else :class:`ConfigError`."""
    if annotation in (inspect.Parameter.empty, Any, object):
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)

    def fail(expected: str | None = None) -> ConfigError:
        expected = expected or _type_name(annotation)
        message = (
            f"{owner}: {key!r} expects {expected}, got {value!r} ({type(value).__name__})"
        )
        return ConfigError(message, key=key, expected=expected, found=value)

    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return coerce_value(owner, key, value, option)
            except ConfigError:
                continue
        raise fail(" or ".join(_type_name(a) for a in args))
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and isinstance(choice, str) and value.strip().lower() == choice.lower()):
                return choice
        raise fail("one of " + ", ".join(repr(c) for c in args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise fail("a boolean")
    if annotation is int:
        if isinstance(value, bool):
            raise fail("an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise fail("an int") from None
            if number.is_integer():
                return int(number)
        raise fail("an int")
    if annotation is float:
        if isinstance(value, bool):
            raise fail("a float")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise fail("a float") from None
        raise fail("a float")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise fail("a string")
    if origin in (tuple, list, Sequence) or annotation in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise fail("a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise fail(f"a list of {len(args)} items")
            return tuple(coerce_value(owner, f"{key}[{i}]", v, a) for i, v, a in zip(range(len(value)), value, args))
        item = args[0] if args else Any
        converted = [coerce_value(owner, f"{key}[{i}]", v, item) for i, v in enumerate(value)]
        return tuple(converted) if (origin is tuple or annotation is tuple) else converted
    if origin in (dict, Mapping) or annotation in (dict,):
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        return dict(value)
    return value


def _signature_of(target: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    func = target.__init__ if isinstance(target, type) else target
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        hints = {}
    return signature, hints


def validate_kwargs(
    owner: str,
    target: Any,
    kwargs: Mapping[str, Any],
    *,
    skip: int = 0,
    provided: Sequence[str] = (),
) -> dict[str, Any]:
    """Check ``kwargs`` against ``target``'s signature and coerce values to the annotations.

    :param skip: leading positional parameters filled by the builder (``params`` of an optimizer).
    :param provided: names the builder passes itself.
    """
    if not isinstance(kwargs, Mapping):
        message = f"{owner}: kwargs must be a mapping, got {type(kwargs).__name__} {kwargs!r}"
        raise ConfigError(message, expected="a mapping", found=kwargs)
    signature, hints = _signature_of(target)
    params = [p for p in signature.parameters.values() if p.name != "self"][skip:]
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    result: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in named:
            if accepts_any:
                result[key] = value
                continue
            accepted = ", ".join(sorted(named)) or "none"
            matches = close_matches(key, named)
            hint = f"; did you mean {matches[0]!r}?" if matches else ""
            message = f"{owner}: unknown kwarg {key!r}{hint} Accepted kwargs: {accepted}."
            raise ConfigError(message, key=key, expected=f"one of: {accepted}", found=key)
        result[key] = coerce_value(owner, key, value, hints.get(key, named[key].annotation))
    missing = [
        name for name, p in named.items()
        if p.default is p.empty and name not in result and name not in provided
    ]
    if missing:
        message = f"{owner}: missing required kwarg(s): {', '.join(missing)}"
        raise ConfigError(message, key=missing[0], expected="a value", found=None)
    return result


# ----------------------------------------------------------------------- builders
def build_loss(name: str | type, /, **kwargs: Any) -> Any:
    """A loss instance: ``build_loss("dpo", beta=0.1)`` (or a ``BaseLoss`` subclass instead of a name)."""
    cls = REGISTRY.load("loss", name) if isinstance(name, str) else name
    owner = f"loss {name!r}" if isinstance(name, str) else f"loss {cls.__name__}"
    return cls(**validate_kwargs(owner, cls, kwargs))


def build_optimizer(name: str | type, model_or_params: Any, /, **kwargs: Any) -> Any:
    """An optimizer for a model (role-based param groups) or for params / param groups.

    Given an ``nn.Module``, parameters are grouped by :mod:`swift_zoo.params` roles: norms and
    biases get no weight decay, and each group carries its ``"role"``. Optimizers whose spec says
    ``needs_model`` receive the model itself. Kwargs are validated before parameters are touched.
    """
    import torch

    cls = REGISTRY.load("optimizer", name) if isinstance(name, str) else name
    owner = f"optimizer {name!r}" if isinstance(name, str) else f"optimizer {cls.__name__}"
    checked = validate_kwargs(owner, cls, kwargs, skip=1)
    lr = checked.get("lr")
    if isinstance(lr, (int, float)) and lr < 0:
        message = f"{owner}: 'lr' must be >= 0, got {lr}"
        raise ConfigError(message, key="lr", expected="a float >= 0", found=lr)
    needs_model = False
    if isinstance(name, str):
        needs_model = bool(getattr(REGISTRY.resolve("optimizer", name).spec, "needs_model", False))
    needs_model = needs_model or bool(getattr(cls, "needs_model", False))
    if isinstance(model_or_params, torch.nn.Module):
        if needs_model:
            return cls(model_or_params, **checked)
        from swift_zoo.params import build_param_groups

        signature, _ = _signature_of(cls)
        default_wd = signature.parameters.get("weight_decay")
        weight_decay = checked.get(
            "weight_decay",
            default_wd.default if default_wd is not None and default_wd.default is not default_wd.empty else 0.0,
        )
        groups = build_param_groups(model_or_params, weight_decay=weight_decay)
        if not groups:
            message = f"{owner}: the model has no trainable parameter"
            raise ConfigError(message, expected="a model with trainable parameters", found=0)
        return cls(groups, **checked)
    return cls(model_or_params, **checked)


def build_advantage(name: str | type, /, **kwargs: Any) -> Any:
    """An advantage estimator: ``build_advantage("grpo", scale_rewards=True)`` (or a class instead of a name)."""
    cls = REGISTRY.load("advantage", name) if isinstance(name, str) else name
    owner = f"advantage estimator {name!r}" if isinstance(name, str) else f"advantage estimator {cls.__name__}"
    return cls(**validate_kwargs(owner, cls, kwargs))


def build_scheduler(name: str | Callable[..., Any], optimizer: Any, /, **kwargs: Any) -> Any:
    """An LR scheduler from a registered schedule: ``build_scheduler("cosine", opt, num_training_steps=1000)``."""
    factory = REGISTRY.load("scheduler", name) if isinstance(name, str) else name
    owner = f"scheduler {name!r}" if isinstance(name, str) else f"scheduler {factory!r}"
    return factory(optimizer, **validate_kwargs(owner, factory, kwargs, skip=1))


def load_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A config dict from a mapping or a YAML file (``yaml.safe_load`` only, within the limits of
    :mod:`swift_zoo._config_file`: a regular UTF-8 file of at most 1 MiB that expands to at most 100,000
    values; anything else is a :class:`ConfigError`)."""
    if isinstance(config, Mapping):
        return dict(config)
    path = os.fspath(config)
    data = read_config_file(path)
    if not isinstance(data, Mapping):
        message = f"config file {path!r} must hold a mapping at top level, got {type(data).__name__}"
        raise ConfigError(message, expected="a mapping", found=type(data).__name__)
    return dict(data)


#: The ``training_args`` keys swift zoo reads; every other key is the trainer's (``TrainingComponents.passthrough``).
ZOO_KEYS = (
    "loss_type", "loss_kwargs", "advantage_type", "advantage_kwargs", "optimizer_type", "optimizer_kwargs",
    "lr_scheduler_type", "lr_scheduler_kwargs", "learning_rate", "max_steps", "max_grad_norm", "nonfinite_grads",
)
#: How close (difflib ratio) an unknown key must be to a known one to be taken for its typo: ``loss_kwarg``,
#: ``optimiser_type``, ``losss_type``, ``max_step`` are (0.93-0.95); trainer keys such as ``save_steps`` or
#: ``eval_steps`` next to ``max_steps`` are not (0.74).
TYPO_CUTOFF = 0.8


def check_training_args(args: Mapping[str, Any], trainer_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The keys of ``args`` that swift zoo does not read (left for the trainer), after refusing typos.

    A key that is not one of :data:`ZOO_KEYS` nor of ``trainer_keys`` (the keys the calling trainer reads)
    but close to one of them is a :class:`ConfigError` with a did-you-mean: a silently ignored
    ``loss_kwarg`` would train with the defaults. Other unknown keys pass through.
    """
    known = (*ZOO_KEYS, *trainer_keys)
    passthrough: dict[str, Any] = {}
    for key, value in args.items():
        if key in ZOO_KEYS:
            continue
        if not isinstance(key, str):
            message = f"training_args keys must be strings, got {key!r} ({type(key).__name__})"
            raise ConfigError(message, key=str(key), expected="a string key", found=key)
        if key not in known:
            matches = close_matches(key, known, n=1, cutoff=TYPO_CUTOFF)
            if matches:
                message = (
                    f"training_args: unknown key {key!r}; did you mean {matches[0]!r}? (swift zoo reads "
                    f"{', '.join(ZOO_KEYS)}; other keys pass through to the trainer)"
                )
                raise ConfigError(message, key=key, expected=matches[0], found=key)
        passthrough[key] = value
    return passthrough


@dataclass
class TrainingComponents:
    """What :func:`build_from_config` returns. ``passthrough``: the ``training_args`` keys swift zoo did not
    read, for the trainer (``per_device_train_batch_size``, ``warmup_steps``...)."""

    loss: Any = None
    advantage: Any = None
    optimizer: Any = None
    lr_scheduler: Any = None
    max_grad_norm: float | None = None
    training_args: dict[str, Any] = field(default_factory=dict)
    passthrough: dict[str, Any] = field(default_factory=dict)

    def clip_and_step(self, parameters: Any) -> Any:
        """Clip gradients (if ``max_grad_norm``), step the optimizer and the schedule; the grad norm."""
        import torch

        norm = None
        if self.max_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
        self.optimizer.step()
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        return norm


def _section(args: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = args.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        message = f"training_args.{key} must be a mapping, got {type(value).__name__} {value!r}"
        raise ConfigError(message, key=key, expected="a mapping", found=value)
    return dict(value)


def build_from_config(config: Mapping[str, Any] | str | os.PathLike[str], model: Any = None, *,
                      trainer_keys: Sequence[str] = ()) -> TrainingComponents:
    """Loss, optimizer, LR schedule and clipping from ``training_args`` of a dict or YAML file.

    Reads ``loss_type``/``loss_kwargs``, ``advantage_type``/``advantage_kwargs``, ``optimizer_type``/``optimizer_kwargs`` (``lr``
    defaults to ``learning_rate`` when only that is given), ``lr_scheduler_type``/
    ``lr_scheduler_kwargs`` (``num_training_steps`` defaults to ``max_steps``), ``max_grad_norm`` (a finite
    number > 0) and ``nonfinite_grads`` (``"skip"`` or ``"raise"``: the built optimizer's non-finite gradient
    policy). Other keys are left for the trainer (``passthrough``) after :func:`check_training_args` refuses
    near-misses of the known keys and of ``trainer_keys``. The optimizer needs ``model``.
    """
    data = load_config(config)
    args = data.get("training_args", data)
    if not isinstance(args, Mapping):
        message = f"training_args must be a mapping, got {type(args).__name__}"
        raise ConfigError(message, key="training_args", expected="a mapping", found=args)
    args = dict(args)
    passthrough = check_training_args(args, trainer_keys)
    if "loss_type" not in args and "optimizer_type" not in args:
        message = (
            "config has neither training_args.loss_type nor training_args.optimizer_type; "
            f"found keys: {', '.join(sorted(map(str, args))) or 'none'}"
        )
        raise ConfigError(message, key="loss_type", expected="loss_type and/or optimizer_type", found=sorted(args))
    built = TrainingComponents(training_args=args, passthrough=passthrough)
    if args.get("max_grad_norm") is not None:
        value = coerce_value("training_args", "max_grad_norm", args["max_grad_norm"], float)
        built.max_grad_norm = require_positive("training_args", "max_grad_norm", value)
    if args.get("loss_type") is not None:
        built.loss = build_loss(_name(args, "loss_type"), **_section(args, "loss_kwargs"))
    if args.get("advantage_type") is not None:
        built.advantage = build_advantage(_name(args, "advantage_type"), **_section(args, "advantage_kwargs"))
    if args.get("optimizer_type") is not None:
        if model is None:
            message = "training_args.optimizer_type is set: pass the model (or its parameters) to build_from_config"
            raise ConfigError(message, key="optimizer_type", expected="a model", found=None)
        opt_kwargs = _section(args, "optimizer_kwargs")
        if "lr" not in opt_kwargs and "learning_rate" in args:
            value = coerce_value("training_args", "learning_rate", args["learning_rate"], float)
            opt_kwargs["lr"] = require_non_negative("training_args", "learning_rate", value)
        built.optimizer = build_optimizer(_name(args, "optimizer_type"), model, **opt_kwargs)
    if args.get("nonfinite_grads") is not None:
        set_nonfinite_policy(built.optimizer, args["nonfinite_grads"])
    if args.get("lr_scheduler_type") is not None:
        if built.optimizer is None:
            message = "training_args.lr_scheduler_type needs an optimizer_type"
            raise ConfigError(message, key="lr_scheduler_type", expected="optimizer_type", found=None)
        sched_kwargs = _section(args, "lr_scheduler_kwargs")
        if "num_training_steps" not in sched_kwargs and "max_steps" in args:
            sched_kwargs["num_training_steps"] = coerce_value("training_args", "max_steps", args["max_steps"], int)
        built.lr_scheduler = build_scheduler(_name(args, "lr_scheduler_type"), built.optimizer, **sched_kwargs)
    return built


def set_nonfinite_policy(optimizer: Any, value: Any) -> None:
    """``training_args.nonfinite_grads`` onto the built optimizer (a :class:`swift_zoo.optim.ZooOptimizer`)."""
    if optimizer is None:
        message = ("training_args.nonfinite_grads is the optimizer's non-finite gradient policy: "
                   "it needs an optimizer_type")
        raise ConfigError(message, key="nonfinite_grads", expected="optimizer_type", found=None)
    if not isinstance(getattr(type(optimizer), "nonfinite_grads", None), property):
        message = (
            f"training_args.nonfinite_grads: the optimizer {type(optimizer).__name__} has no non-finite gradient "
            "policy (it is not a swift_zoo.optim.ZooOptimizer); remove the key"
        )
        raise ConfigError(message, key="nonfinite_grads", expected="a ZooOptimizer", found=type(optimizer).__name__)
    optimizer.nonfinite_grads = value  # the property validates it ("skip" or "raise")


def _name(args: Mapping[str, Any], key: str) -> str:
    value = args[key]
    if not isinstance(value, str) or not value.strip():
        message = f"training_args.{key} must be a registered name (a string), got {value!r}"
        raise ConfigError(message, key=key, expected="a string", found=value)
    return value
