"""Spec records: what a plugin says about each loss, optimizer or LR schedule it provides.

A spec is cheap to build and to list: its ``target`` may be a ``"module:attr"`` string that is
imported only on first use, so ``swift-zoo list`` never imports torch or an implementation.
Plugins may also return bare classes; the spec is then read from class attributes
(``name``, ``aliases``, ``summary`` or the first docstring line).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from swift_zoo._capability import DistributedCapability
from swift_zoo._errors import InvalidPluginError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def normalize_name(name: str) -> str:
    """Canonical form of a user-written name: stripped, lower-case, ``-`` turned into ``_``.

    A qualified name keeps its ``plugin:`` prefix, normalised the same way.
    """
    if not isinstance(name, str):
        message = f"a name must be a string, got {type(name).__name__} {name!r}"
        raise TypeError(message)
    return name.strip().lower().replace("-", "_")


@dataclass(frozen=True)
class Spec:
    """Common fields of every kind of spec."""

    kind: ClassVar[str] = "entry"

    name: str
    target: str | type | Any
    aliases: tuple[str, ...] = ()
    summary: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_name(self.name))
        object.__setattr__(self, "aliases", tuple(normalize_name(a) for a in self.aliases))
        for candidate in (self.name, *self.aliases):
            if not _NAME_RE.match(candidate):
                message = (
                    f"{self.kind} name {candidate!r} is not valid: expected lower snake case "
                    "(letters, digits and '_', starting with a letter)"
                )
                raise InvalidPluginError(message)
        target = self.target
        if isinstance(target, str) and ":" not in target:
            message = (
                f"{self.kind} {self.name!r}: a string target must look like 'package.module:Attr', "
                f"got {target!r}"
            )
            raise InvalidPluginError(message)
        if not isinstance(target, str) and not callable(target):
            message = (
                f"{self.kind} {self.name!r}: target must be a class, a callable or a "
                f"'module:attr' string, got {type(target).__name__}"
            )
            raise InvalidPluginError(message)

    @property
    def target_path(self) -> str:
        """The target as a ``module:qualname`` string, whether given as a string or an object."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    def metadata(self) -> dict[str, Any]:
        """Every field but the target, as plain values (for ``--json`` listings)."""
        data = {}
        for f in fields(self):
            if f.name == "target":
                continue
            value = getattr(self, f.name)
            data[f.name] = value.as_dict() if dataclasses.is_dataclass(value) else value
        return data


@dataclass(frozen=True)
class LossSpec(Spec):
    """A loss: a :class:`swift_zoo.BaseLoss` subclass (or a string pointing at one)."""

    kind: ClassVar[str] = "loss"


@dataclass(frozen=True)
class OptimizerSpec(Spec):
    """An optimizer: a ``torch.optim.Optimizer`` subclass (or a string pointing at one).

    :param state_bytes: the optimizer-state cost per parameter, in words (the computable
        formula is the optimizer's ``state_bytes_for`` method, which the suite checks).
    :param roles: parameter roles the method acts on (``swift_zoo.params``); other roles go to
        its inner AdamW. ``("all",)`` for optimizers that treat every parameter alike.
    :param needs_model: the constructor needs the model (names, modules), not bare params.
    :param hooks: extra methods a trainer must call, e.g. ``("train", "eval")`` (schedule-free).
    :param license: a note when the reference implementation carries a restrictive license.
    :param distributed: a :class:`~swift_zoo.DistributedCapability`: for DDP, FSDP2, ZeRO-1/2, ZeRO-3 and FSDP1
        flat parameters, supported (tested equal to one process) or refused (a clear error), and how. The
        optimizer class carries the same record as its ``distributed`` attribute (the suite checks they agree).
    """

    kind: ClassVar[str] = "optimizer"

    state_bytes: str = ""
    roles: tuple[str, ...] = ("all",)
    needs_model: bool = False
    hooks: tuple[str, ...] = ()
    license: str = ""
    distributed: DistributedCapability = DistributedCapability()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.distributed, DistributedCapability):
            message = (
                f"optimizer {self.name!r}: distributed must be a swift_zoo.DistributedCapability record "
                f"(per wrapper: Support('supported' | 'refused' | 'untested', how)), got {type(self.distributed).__name__}"
            )
            raise InvalidPluginError(message)


@dataclass(frozen=True)
class AdvantageSpec(Spec):
    """An advantage estimator: a :class:`swift_zoo.advantages.BaseAdvantage` subclass (or a string pointing at one)."""

    kind: ClassVar[str] = "advantage"


@dataclass(frozen=True)
class SchedulerSpec(Spec):
    """A learning-rate schedule: a callable ``(optimizer, *, num_training_steps, **kw)`` → LRScheduler."""

    kind: ClassVar[str] = "scheduler"


def spec_from_object(
    kind_cls: type[Spec],
    obj: Any,
    *,
    name: str | None = None,
    aliases: tuple[str, ...] | None = None,
) -> Spec:
    """Turn what a hook returned (a spec, or a class carrying ``name``) into a spec of ``kind_cls``.

    ``name`` and ``aliases``, when given, replace what the object declares (in-process registration).
    """
    if isinstance(obj, Spec):
        if not isinstance(obj, kind_cls):
            message = f"expected a {kind_cls.__name__}, got a {type(obj).__name__} ({obj.name!r})"
            raise InvalidPluginError(message)
        return obj
    name = name or getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        message = (
            f"expected a {kind_cls.__name__} or a class with a string `name` attribute, "
            f"got {obj!r}"
        )
        raise InvalidPluginError(message)
    doc = (getattr(obj, "__doc__", None) or "").strip()
    summary = getattr(obj, "summary", None) or (doc.splitlines()[0] if doc else "")
    extra = {}
    for f in fields(kind_cls):
        if f.name in {"name", "target", "aliases", "summary"}:
            continue
        if isinstance(getattr(obj, f.name, None), type(f.default)):
            extra[f.name] = getattr(obj, f.name)
    return kind_cls(
        name=name,
        target=obj,
        aliases=tuple(aliases if aliases is not None else getattr(obj, "aliases", ()) or ()),
        summary=summary,
        **extra,
    )
