"""Plugin discovery and name resolution. Imports neither torch nor any implementation module.

Discovery reads ``importlib.metadata.entry_points(group="swift_zoo")`` once per process, loads
each plugin module in its own ``try`` and calls each plugin's hooks one by one, so a broken plugin
is recorded (and warned about once) without hiding the others. Targets given as
``"module:attr"`` strings are imported only when a name is resolved to a class.

Environment:

* ``SWIFT_ZOO_STRICT_PLUGINS=1``: a plugin that fails raises :class:`PluginLoadError`.
* ``SWIFT_ZOO_DISABLE_PLUGINS=a,b``: skip the named plugins (entry-point names).
* ``SWIFT_ZOO_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry point; only in-process registrations.

Names are normalised (:func:`normalize_name`). ``"plugin:name"`` always reaches one plugin's entry;
a bare name or alias resolves when exactly one target provides it. In-process registrations
(:func:`register_loss` and friends, plugin name ``local``) shadow plugin entries of the same bare
name, the way a local definition shadows a library's.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from swift_zoo._errors import (
    AmbiguousNameError,
    InvalidPluginError,
    PluginImportError,
    PluginLoadError,
    UnknownAdvantageError,
    UnknownLossError,
    UnknownNameError,
    UnknownOptimizerError,
    UnknownSchedulerError,
)
from swift_zoo._specs import (
    AdvantageSpec,
    LossSpec,
    OptimizerSpec,
    SchedulerSpec,
    Spec,
    normalize_name,
    spec_from_object,
)

LOCAL_PLUGIN = "local"
STRICT_ENV = "SWIFT_ZOO_STRICT_PLUGINS"
DISABLE_ENV = "SWIFT_ZOO_DISABLE_PLUGINS"
NO_AUTOLOAD_ENV = "SWIFT_ZOO_DISABLE_PLUGIN_AUTOLOAD"


class SwiftZooPluginWarning(UserWarning):
    """A plugin failed to load; the others are still available."""


@dataclass(frozen=True)
class Kind:
    """One kind of registered thing: its spec type, hook and unknown-name error."""

    name: str
    spec_type: type[Spec]
    hook: str
    unknown_error: type[UnknownNameError]


LOSS = Kind("loss", LossSpec, "swift_zoo_register_losses", UnknownLossError)
OPTIMIZER = Kind("optimizer", OptimizerSpec, "swift_zoo_register_optimizers", UnknownOptimizerError)
SCHEDULER = Kind("scheduler", SchedulerSpec, "swift_zoo_register_schedulers", UnknownSchedulerError)
ADVANTAGE = Kind("advantage", AdvantageSpec, "swift_zoo_register_advantages", UnknownAdvantageError)
KINDS: dict[str, Kind] = {k.name: k for k in (LOSS, OPTIMIZER, SCHEDULER, ADVANTAGE)}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def strict_mode() -> bool:
    return _env_flag(STRICT_ENV)


@dataclass
class PluginRecord:
    """What discovery learned about one plugin (entry point)."""

    name: str
    entry_point: str
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"  # "ok", "error" or "disabled"
    hooks: tuple[str, ...] = ()
    errors: list[PluginLoadError] = field(default_factory=list)

    @property
    def origin(self) -> str:
        if self.distribution is None:
            return "this process" if self.name == LOCAL_PLUGIN else "an unknown distribution"
        return f"{self.distribution} {self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entry_point": self.entry_point,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "hooks": list(self.hooks),
            "errors": [e.error_summary for e in self.errors],
        }


@dataclass(frozen=True)
class Entry:
    """One registered loss, optimizer or schedule, as listed: its spec and where it comes from."""

    spec: Spec
    plugin: PluginRecord
    override: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin.name}:{self.spec.name}"

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def distribution(self) -> str | None:
        return self.plugin.distribution

    @property
    def version(self) -> str | None:
        return self.plugin.version

    def provides(self, name: str) -> bool:
        return name == self.spec.name or name in self.spec.aliases

    def as_dict(self) -> dict[str, Any]:
        data = self.spec.metadata()
        data["aliases"] = list(self.spec.aliases)
        data.update(
            qualified_name=self.qualified_name,
            kind=self.kind,
            target=self.spec.target_path,
            plugin=self.plugin.name,
            distribution=self.distribution,
            version=self.version,
        )
        return data


def import_target(target: str) -> Any:
    """Import ``"package.module:Attr.sub"`` and return the attribute."""
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


class Registry:
    """Discovered plugins and their entries, plus in-process registrations. One per process."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._plugins: dict[str, PluginRecord] | None = None
        self._entries: dict[str, list[Entry]] = {}
        self._local: dict[str, list[Entry]] = {k: [] for k in KINDS}
        self._loaded: dict[tuple[str, str], Any] = {}
        self._local_record = PluginRecord(name=LOCAL_PLUGIN, entry_point="(in-process)")

    # ----------------------------------------------------------------- discovery
    def reload(self) -> None:
        """Forget what discovery found (in-process registrations stay); the next query rescans."""
        with self._lock:
            self._plugins = None
            self._entries = {}
            self._loaded = {k: v for k, v in self._loaded.items() if k[0].startswith(LOCAL_PLUGIN + ":")}

    def _ensure_discovered(self) -> dict[str, PluginRecord]:
        if self._plugins is None:
            with self._lock:
                if self._plugins is None:
                    self._discover()
        assert self._plugins is not None
        return self._plugins

    def _discover(self) -> None:
        import importlib.metadata as metadata

        import pluggy

        from swift_zoo import _hookspecs

        strict = strict_mode()
        disabled = {
            normalize_name(n) for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()
        }
        plugins: dict[str, PluginRecord] = {}
        entries: dict[str, list[Entry]] = {k: [] for k in KINDS}
        manager = pluggy.PluginManager(_hookspecs.PROJECT_NAME)
        manager.add_hookspecs(_hookspecs)
        known_hooks = {kind.hook for kind in KINDS.values()}

        def fail(record: PluginRecord, exc: BaseException, stage: str) -> None:
            error = PluginLoadError(
                record.name,
                distribution=record.distribution,
                version=record.version,
                entry_point=record.entry_point,
                error=exc,
                stage=stage,
            )
            record.status = "error"
            record.errors.append(error)
            if strict:
                raise error from exc
            warnings.warn(error.format_message(), SwiftZooPluginWarning, stacklevel=4)

        found = [] if _env_flag(NO_AUTOLOAD_ENV) else metadata.entry_points(group=_hookspecs.ENTRY_POINT_GROUP)
        modules: dict[str, Any] = {}
        for ep in sorted(found, key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            record = PluginRecord(
                name=normalize_name(ep.name),
                entry_point=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            if record.name in plugins:
                other = plugins[record.name]
                if other.entry_point == record.entry_point:
                    continue  # the same plugin seen twice (stale or duplicated metadata)
                record.name = f"{record.name}@{record.distribution}"
                fail(record, InvalidPluginError(
                    f"plugin name {ep.name!r} is already used by {other.origin}"
                    f" ({other.entry_point}); it is available here as {record.name!r}"), "naming")
                record.status = "ok"
            plugins[record.name] = record
            if record.name in disabled or normalize_name(ep.name) in disabled:
                record.status = "disabled"
                continue
            module = None
            try:
                module = ep.load()
                unknown = sorted(
                    attr for attr in dir(module)
                    if attr.startswith("swift_zoo_") and attr not in known_hooks
                    and callable(getattr(module, attr))
                )
                if unknown:
                    message = (
                        f"unknown hook(s) {', '.join(unknown)}; expected any of "
                        f"{', '.join(sorted(known_hooks))}"
                    )
                    raise InvalidPluginError(message)
                manager.register(module, name=record.name)
            except Exception as exc:
                if module is not None and manager.is_registered(module):
                    manager.unregister(module)
                fail(record, exc, "import")
                continue
            modules[record.name] = module
            record.hooks = tuple(
                impl_hook for impl_hook in sorted(known_hooks) if hasattr(module, impl_hook)
            )

        for kind in KINDS.values():
            caller = getattr(manager.hook, kind.hook)
            impls = sorted(caller.get_hookimpls(), key=lambda impl: impl.plugin_name)
            for impl in impls:
                record = plugins[impl.plugin_name]
                try:
                    produced = impl.function() or ()
                    specs = [spec_from_object(kind.spec_type, obj) for obj in produced]
                    seen: dict[str, Spec] = {}
                    for spec in specs:
                        if spec.name in seen and seen[spec.name].target_path != spec.target_path:
                            message = (
                                f"{kind.name} {spec.name!r} is returned twice with different "
                                f"targets: {seen[spec.name].target_path} and {spec.target_path}"
                            )
                            raise InvalidPluginError(message)
                        seen[spec.name] = spec
                except Exception as exc:
                    fail(record, exc, kind.hook)
                    continue
                entries[kind.name].extend(Entry(spec, record) for spec in seen.values())

        self._plugins = plugins
        self._entries = entries

    # ------------------------------------------------------------------ queries
    def plugins(self) -> list[PluginRecord]:
        """Every discovered plugin, ok, failed or disabled, sorted by name."""
        found = list(self._ensure_discovered().values())
        if any(self._local.values()):
            found.append(self._local_record)
        return sorted(found, key=lambda r: r.name)

    def failed_plugins(self) -> list[PluginRecord]:
        return [p for p in self.plugins() if p.status == "error"]

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of ``kind``, plugin ones sorted by qualified name, then local ones."""
        self._ensure_discovered()
        return sorted(self._entries[kind], key=lambda e: e.qualified_name) + list(self._local[kind])

    def resolve(self, kind: str, name: str) -> Entry:
        """The entry a (bare, aliased or qualified) name designates, or a helpful error."""
        k = KINDS[kind]
        wanted = normalize_name(name)
        everything = self.entries(kind)
        if ":" in wanted:
            plugin, _, bare = wanted.partition(":")
            for entry in everything:
                if entry.plugin.name == plugin and entry.provides(bare):
                    return entry
            self._raise_unknown(k, wanted, everything)
        local = [e for e in self._local[kind] if e.provides(wanted)]
        if local:
            return local[-1]
        found = [e for e in everything if e.provides(wanted)]
        if not found:
            self._raise_unknown(k, wanted, everything)
        targets = {e.spec.target_path for e in found}
        if len(targets) == 1:
            # identical duplicates merge; prefer the entry whose canonical name matches
            found.sort(key=lambda e: (e.spec.name != wanted, e.qualified_name))
            return found[0]
        raise AmbiguousNameError(kind, wanted, [(e.qualified_name, e.plugin.origin) for e in found])

    def _raise_unknown(self, kind: Kind, wanted: str, everything: list[Entry]) -> None:
        names = set()
        for e in everything:
            names.add(e.spec.name)
            names.update(e.spec.aliases)
        failed = [p.name for p in self.failed_plugins()]
        raise kind.unknown_error(wanted, sorted(names), failed_plugins=failed)

    def load(self, kind: str, name: str) -> Any:
        """Resolve ``name`` and return its target object (imported on first use, then cached)."""
        entry = self.resolve(kind, name)
        return self.load_entry(entry)

    def load_entry(self, entry: Entry) -> Any:
        key = (entry.qualified_name, entry.spec.target_path)
        if key in self._loaded:
            return self._loaded[key]
        target = entry.spec.target
        if isinstance(target, str):
            try:
                target = import_target(target)
            except Exception as exc:
                raise PluginImportError(entry.qualified_name, entry.spec.target, entry.plugin.origin, exc) from exc
        _check_target(entry, target)
        self._loaded[key] = target
        return target

    # -------------------------------------------------------------- registration
    def register(self, kind: str, obj: Any, *, name: str | None = None,
                 aliases: tuple[str, ...] | None = None, override: bool = False) -> Entry:
        """Register ``obj`` (a class, a spec, or a callable) in this process under plugin ``local``."""
        k = KINDS[kind]
        if isinstance(obj, Spec):
            spec = obj
        else:
            spec = spec_from_object(k.spec_type, obj, name=name, aliases=aliases)
            if isinstance(obj, type) and not getattr(obj, "name", None):
                obj.name = spec.name  # the seed story: a class without a name takes the registered one
        with self._lock:
            bucket = self._local[kind]
            for i, existing in enumerate(bucket):
                if existing.spec.name != spec.name:
                    continue
                if existing.spec.target_path == spec.target_path:
                    return existing
                if not override:
                    message = (
                        f"{kind} {spec.name!r} is already registered in this process by "
                        f"{existing.spec.target_path}; pass override=True to replace it with "
                        f"{spec.target_path}"
                    )
                    raise InvalidPluginError(message)
                del bucket[i]
                self._loaded.pop((existing.qualified_name, existing.spec.target_path), None)
                break
            entry = Entry(spec, self._local_record, override=override)
            bucket.append(entry)
            self._local_record.hooks = tuple(sorted({*self._local_record.hooks, k.hook}))
        return entry

    def unregister(self, kind: str, name: str) -> None:
        """Remove an in-process registration (tests, notebooks)."""
        wanted = normalize_name(name)
        with self._lock:
            self._local[kind] = [e for e in self._local[kind] if e.spec.name != wanted]


def _check_target(entry: Entry, target: Any) -> None:
    """Passive checks when a name is first resolved to an object: right base class, right name."""
    kind = entry.kind
    where = f"{entry.qualified_name} (from {entry.plugin.origin})"
    if kind == "loss":
        from swift_zoo.losses import BaseLoss

        if not (isinstance(target, type) and issubclass(target, BaseLoss)):
            message = f"{where}: expected a subclass of swift_zoo.BaseLoss, got {target!r}"
            raise InvalidPluginError(message)
    elif kind == "optimizer":
        import torch

        if not (isinstance(target, type) and issubclass(target, torch.optim.Optimizer)):
            message = f"{where}: expected a subclass of torch.optim.Optimizer, got {target!r}"
            raise InvalidPluginError(message)
    elif kind == "advantage":
        from swift_zoo.advantages import BaseAdvantage

        if not (isinstance(target, type) and issubclass(target, BaseAdvantage)):
            message = f"{where}: expected a subclass of swift_zoo.advantages.BaseAdvantage, got {target!r}"
            raise InvalidPluginError(message)
    elif not callable(target):
        message = f"{where}: expected a callable, got {target!r}"
        raise InvalidPluginError(message)
    declared = getattr(target, "name", None)
    if entry.plugin.name == LOCAL_PLUGIN:
        return  # registered by hand under the name the user chose
    if kind != "scheduler" and isinstance(declared, str) and normalize_name(declared) != entry.spec.name:
        message = (
            f"{where}: the spec names it {entry.spec.name!r} but the class declares "
            f"name = {declared!r}; make them equal"
        )
        raise InvalidPluginError(message)


REGISTRY = Registry()


class RegistryMapping(Mapping[str, Any]):
    """A read-mostly mapping view of one kind: ``LOSS_MAPPING["dpo"]`` gives the class.

    ``LOSS_MAPPING.register("my_dpo")(MyDpo)`` registers in-process, as ms-swift users write it;
    ``LOSS_MAPPING["dpo"] = MyDpo`` replaces (shadows) the bare name ``dpo`` in this process.
    """

    def __init__(self, kind: str, registry: Registry = REGISTRY) -> None:
        self._kind = kind
        self._registry = registry

    def __getitem__(self, name: str) -> Any:
        return self._registry.load(self._kind, name)

    def __setitem__(self, name: str, obj: Any) -> None:
        self._registry.register(self._kind, obj, name=name, override=True)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self._registry.resolve(self._kind, name)
        except (UnknownNameError, AmbiguousNameError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for entry in self._registry.entries(self._kind):
            if entry.name not in seen:
                seen.add(entry.name)
                yield entry.name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def register(self, name: str | None = None, *, aliases: tuple[str, ...] | None = None,
                 override: bool = False) -> Callable[[Any], Any]:
        def decorate(obj: Any) -> Any:
            self._registry.register(self._kind, obj, name=name, aliases=aliases, override=override)
            return obj

        return decorate

    def __repr__(self) -> str:
        return f"<{self._kind} registry: {', '.join(self)}>"


LOSS_MAPPING = RegistryMapping("loss")
OPTIMIZER_MAPPING = RegistryMapping("optimizer")
SCHEDULER_MAPPING = RegistryMapping("scheduler")
ADVANTAGE_MAPPING = RegistryMapping("advantage")


def _decorator(kind: str) -> Callable[..., Any]:
    def register(name: str | Any | None = None, *, aliases: tuple[str, ...] | None = None,
                 override: bool = False) -> Any:
        if name is not None and not isinstance(name, str):  # used bare: @register_loss
            REGISTRY.register(kind, name, override=override)
            return name

        def decorate(obj: Any) -> Any:
            REGISTRY.register(kind, obj, name=name, aliases=aliases, override=override)
            return obj

        return decorate

    register.__doc__ = (
        f"Register a {kind} in this process: ``@register_{kind}('name')`` above a class "
        f"(or bare, when the class has a ``name``). ``override=True`` replaces an earlier one."
    )
    return register


register_loss = _decorator("loss")
register_optimizer = _decorator("optimizer")
register_scheduler = _decorator("scheduler")
register_advantage = _decorator("advantage")


def list_losses() -> list[Entry]:
    """Every registered loss (listing imports no implementation)."""
    return REGISTRY.entries("loss")


def list_optimizers() -> list[Entry]:
    """Every registered optimizer (listing imports no implementation)."""
    return REGISTRY.entries("optimizer")


def list_schedulers() -> list[Entry]:
    """Every registered LR schedule."""
    return REGISTRY.entries("scheduler")


def list_advantages() -> list[Entry]:
    """Every registered advantage estimator (listing imports no implementation)."""
    return REGISTRY.entries("advantage")


def list_plugins() -> list[PluginRecord]:
    """Every discovered plugin with its distribution, version, status and errors."""
    return REGISTRY.plugins()


def get_loss(name: str) -> Any:
    """The loss class registered under ``name`` (bare, alias or ``plugin:name``)."""
    return REGISTRY.load("loss", name)


def get_optimizer(name: str) -> Any:
    """The optimizer class registered under ``name`` (bare, alias or ``plugin:name``)."""
    return REGISTRY.load("optimizer", name)


def get_scheduler(name: str) -> Any:
    """The LR-schedule factory registered under ``name``."""
    return REGISTRY.load("scheduler", name)


def get_advantage(name: str) -> Any:
    """The advantage-estimator class registered under ``name`` (bare, alias or ``plugin:name``)."""
    return REGISTRY.load("advantage", name)


def reload_plugins() -> None:
    """Rescan entry points on the next query (for tests and after ``pip install``)."""
    REGISTRY.reload()
