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

Plugins are untrusted code (DESIGN §9):

* any exception a plugin's module, hook or lazily imported target raises -- ``SystemExit`` included,
  ``KeyboardInterrupt`` excepted -- marks that plugin broken; what it prints is captured
  (:mod:`swift_zoo._isolation`);
* a registration made while plugin code runs (``LOSS_MAPPING["dpo"] = X`` at import) is that plugin's
  entry, conflicting with others like any entry, never an in-process one; plugin code cannot unregister;
* a plugin name two distributions claim names neither (:func:`bind_plugin_names`): each is
  ``name@distribution`` and ``name:entry`` is ambiguous; ``local`` is reserved;
* discovery publishes one complete :class:`Discovered` at a time, so lookups racing with
  :func:`reload_plugins` never see half of one.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
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
from swift_zoo._isolation import PluginCode
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
_PLUGIN_NAME_RE = re.compile(r"^[a-z][a-z0-9_.]*$")


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


@dataclass
class Discovered:
    """One complete result of discovery, published whole, so a query running while another thread calls
    :meth:`Registry.reload` sees either the old result or the new one, never half of one. Afterwards only a
    lazily imported target's registrations are added, each by replacing a kind's list under the lock."""

    plugins: dict[str, PluginRecord]
    entries: dict[str, list[Entry]]
    #: plugin names claimed by several distributions -> the distinct names each claimant got
    contested: dict[str, tuple[str, ...]]


@dataclass
class _Running:
    """The plugin whose code runs on this thread, and the registrations that code made (its claims)."""

    plugin: PluginRecord
    claims: list[tuple[str, Entry]] = field(default_factory=list)


def _distribution_key(distribution: str | None) -> str:
    return re.sub(r"[-_.]+", "_", distribution).lower() if distribution else "unknown"


def bind_plugin_names(found: Any) -> tuple[list[tuple[PluginRecord, Any]], dict[str, tuple[str, ...]]]:
    """One :class:`PluginRecord` per entry point, named so that a plugin name stays bound to one distribution.

    Entry points with the same name and value (a stale or duplicated ``dist-info``) count once. A name
    that several distributions claim belongs to none of them -- whichever comes first on ``sys.path``
    would otherwise own ``name:entry``, the spelling documented to always work -- so each claimant is
    named ``name@distribution`` (reported at discovery) and ``name:entry`` is ambiguous.
    """
    claims: dict[str, list[Any]] = {}
    for ep in found:
        name = normalize_name(ep.name)
        same = claims.setdefault(name, [])
        if not any(other.value == ep.value for other in same):
            same.append(ep)
    bound: list[tuple[PluginRecord, Any]] = []
    contested: dict[str, tuple[str, ...]] = {}
    for name in sorted(claims):
        group = claims[name]
        records = []
        for ep in group:
            dist = getattr(ep, "dist", None)
            record = PluginRecord(
                name=name,
                entry_point=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            if len(group) > 1:
                record.name = f"{name}@{_distribution_key(record.distribution)}"
                while any(r.name == record.name for r, _ in records):
                    record.name += "_"
            records.append((record, ep))
        records.sort(key=lambda pair: pair[0].name)
        if len(group) > 1:
            contested[name] = tuple(r.name for r, _ in records)
        bound += records
    return bound, contested


class Registry:
    """Discovered plugins and their entries, plus in-process registrations. One per process.

    Thread-safe: discovery runs once under a lock and publishes a :class:`Discovered` whole; every
    query works on the one it read. Plugin code (a plugin's module, hooks and lazily imported targets)
    runs through :class:`~swift_zoo._isolation.PluginCode`, and a registration it makes (``LOSS_MAPPING["dpo"]
    = X`` at import) is that plugin's entry -- a conflict like any other -- never an in-process one.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._discovered: Discovered | None = None
        self._local: dict[str, list[Entry]] = {k: [] for k in KINDS}
        self._loaded: dict[tuple[str, str], Any] = {}
        self._local_record = PluginRecord(name=LOCAL_PLUGIN, entry_point="(in-process)")
        self._thread = threading.local()  # .running: _Running | None; .discovering: bool

    # ----------------------------------------------------------------- discovery
    def reload(self) -> None:
        """Forget what discovery found (in-process registrations stay); the next query rescans."""
        with self._lock:
            self._discovered = None
            self._loaded = {k: v for k, v in self._loaded.items() if k[0].startswith(LOCAL_PLUGIN + ":")}

    def discovered(self) -> Discovered:
        """The current discovery result (discovering first if needed)."""
        found = self._discovered
        if found is not None:
            return found
        with self._lock:
            if getattr(self._thread, "discovering", False):
                message = (
                    "plugin code looked a name up while plugins were being discovered; a plugin module and "
                    "its hooks must not query the registry (resolve names when they are used instead)"
                )
                raise InvalidPluginError(message)
            if self._discovered is None:
                self._thread.discovering = True
                try:
                    self._discovered = self._discover()
                finally:
                    self._thread.discovering = False
            return self._discovered

    @contextlib.contextmanager
    def _running(self, plugin: PluginRecord) -> Iterator[tuple[PluginCode, _Running]]:
        """Run plugin code: isolated (:class:`PluginCode`) and with its registrations claimed for ``plugin``."""
        previous = getattr(self._thread, "running", None)
        running = _Running(plugin)
        self._thread.running = running
        try:
            with PluginCode() as call:
                yield call, running
        finally:
            self._thread.running = previous

    @staticmethod
    def _echo(plugin: PluginRecord, output: str) -> None:
        """What a plugin printed while it loaded fine, on stderr under its name (never on stdout)."""
        if output.strip():
            for line in output.rstrip().splitlines():
                print(f"swift-zoo: plugin {plugin.name!r} ({plugin.origin}) printed: {line}", file=sys.stderr)

    def _discover(self) -> Discovered:
        import importlib.metadata as metadata

        import pluggy

        from swift_zoo import _hookspecs

        strict = strict_mode()
        disabled = {
            normalize_name(n) for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()
        }
        entries: dict[str, list[Entry]] = {k: [] for k in KINDS}
        manager = pluggy.PluginManager(_hookspecs.PROJECT_NAME)
        manager.add_hookspecs(_hookspecs)
        known_hooks = {kind.hook for kind in KINDS.values()}

        def fail(record: PluginRecord, exc: BaseException, stage: str, output: str = "") -> None:
            error = PluginLoadError(
                record.name,
                distribution=record.distribution,
                version=record.version,
                entry_point=record.entry_point,
                error=exc,
                stage=stage,
                output=output,
            )
            record.status = "error"
            record.errors.append(error)
            if strict:
                raise error from exc
            warnings.warn(error.format_message(), SwiftZooPluginWarning, stacklevel=5)

        def keep(running: _Running) -> None:
            for kind, entry in running.claims:
                entries[kind].append(entry)

        found = [] if _env_flag(NO_AUTOLOAD_ENV) else metadata.entry_points(group=_hookspecs.ENTRY_POINT_GROUP)
        bound, contested = bind_plugin_names(found)
        plugins: dict[str, PluginRecord] = {}
        for record, ep in bound:
            plugins[record.name] = record
            base = normalize_name(ep.name)
            if base in contested:
                others = ", ".join(f"{r.name} ({r.origin})" for r, e in bound if normalize_name(e.name) == base)
                fail(record, InvalidPluginError(
                    f"plugin name {base!r} is claimed by {len(contested[base])} distributions: {others}; it names "
                    f"none of them, and this one is available as {record.name!r}"), "naming")
                record.status = "ok"
            elif not _PLUGIN_NAME_RE.match(base) or base == LOCAL_PLUGIN:
                fail(record, InvalidPluginError(
                    f"entry point name {ep.name!r} is not a usable plugin name: expected letters, digits, '_' or "
                    f"'.', starting with a letter, and not {LOCAL_PLUGIN!r} (reserved for in-process registrations)"),
                    "naming")
                continue
            if record.name in disabled or base in disabled:
                record.status = "disabled"
                continue
            with self._running(record) as (call, running):
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
            if call.error is not None:
                if manager.has_plugin(record.name):
                    manager.unregister(name=record.name)
                fail(record, call.error, "import", call.output)
                continue
            self._echo(record, call.output)
            keep(running)
            record.hooks = tuple(impl_hook for impl_hook in sorted(known_hooks) if hasattr(module, impl_hook))

        for kind in KINDS.values():
            caller = getattr(manager.hook, kind.hook)
            for impl in sorted(caller.get_hookimpls(), key=lambda impl: impl.plugin_name):
                record = plugins[impl.plugin_name]
                with self._running(record) as (call, running):
                    seen: dict[str, Spec] = {}
                    for obj in impl.function() or ():
                        spec = spec_from_object(kind.spec_type, obj)
                        if spec.name in seen and seen[spec.name].target_path != spec.target_path:
                            message = (
                                f"{kind.name} {spec.name!r} is returned twice with different "
                                f"targets: {seen[spec.name].target_path} and {spec.target_path}"
                            )
                            raise InvalidPluginError(message)
                        seen[spec.name] = spec
                if call.error is not None:
                    fail(record, call.error, kind.hook, call.output)
                    continue
                self._echo(record, call.output)
                entries[kind.name].extend(Entry(spec, record) for spec in seen.values())
                keep(running)
        return Discovered(plugins, entries, contested)

    # ------------------------------------------------------------------ queries
    def plugins(self) -> list[PluginRecord]:
        """Every discovered plugin, ok, failed or disabled, sorted by name."""
        found = list(self.discovered().plugins.values())
        if any(self._local.values()):
            found.append(self._local_record)
        return sorted(found, key=lambda r: r.name)

    def failed_plugins(self) -> list[PluginRecord]:
        return [p for p in self.plugins() if p.status == "error"]

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of ``kind``, plugin ones sorted by qualified name, then local ones."""
        found = self.discovered()
        return sorted(found.entries[kind], key=lambda e: e.qualified_name) + list(self._local[kind])

    def resolve(self, kind: str, name: str) -> Entry:
        """The entry a (bare, aliased or qualified) name designates, or a helpful error."""
        k = KINDS[kind]
        wanted = normalize_name(name)
        found_now = self.discovered()
        everything = sorted(found_now.entries[kind], key=lambda e: e.qualified_name) + list(self._local[kind])
        if ":" in wanted:
            plugin, _, bare = wanted.partition(":")
            claimants = found_now.contested.get(plugin)
            if claimants is not None:
                candidates = [e for e in everything if e.plugin.name in claimants and e.provides(bare)]
                if not candidates:
                    self._raise_unknown(k, wanted, everything)
                reason = (
                    f"the plugin name {plugin!r} is claimed by {len(claimants)} distributions "
                    f"({', '.join(claimants)}), so it names none of them"
                )
                raise AmbiguousNameError(kind, wanted, [(e.qualified_name, e.plugin.origin) for e in candidates],
                                         reason=reason)
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
        loaded = self._loaded
        if key in loaded:
            return loaded[key]
        target = entry.spec.target
        if isinstance(target, str) and entry.plugin is self._local_record:
            try:
                target = import_target(target)
            except Exception as exc:
                raise PluginImportError(entry.qualified_name, entry.spec.target, entry.plugin.origin, exc) from exc
        elif isinstance(target, str):
            discovered = self._discovered
            with self._running(entry.plugin) as (call, running):
                target = import_target(target)
            if call.error is not None:
                raise PluginImportError(entry.qualified_name, entry.spec.target, entry.plugin.origin, call.error,
                                        call.output) from call.error
            self._echo(entry.plugin, call.output)
            if running.claims:
                with self._lock:
                    if discovered is not None and self._discovered is discovered:
                        for kind, claimed in running.claims:
                            discovered.entries[kind] = [*discovered.entries[kind], claimed]
        _check_target(entry, target)
        loaded[key] = target
        return target

    # -------------------------------------------------------------- registration
    def register(self, kind: str, obj: Any, *, name: str | None = None,
                 aliases: tuple[str, ...] | None = None, override: bool = False) -> Entry:
        """Register ``obj`` (a class, a spec, or a callable) in this process under plugin ``local``.

        Called from a plugin's code (its module, a hook, a target it imports), the registration belongs to
        that plugin instead: an entry ``<plugin>:<name>`` that conflicts with other plugins' entries of the
        same name like any other (``override`` does not apply), so a plugin cannot replace a name it does
        not own.
        """
        k = KINDS[kind]
        if isinstance(obj, Spec):
            spec = obj
        else:
            spec = spec_from_object(k.spec_type, obj, name=name, aliases=aliases)
            if isinstance(obj, type) and not getattr(obj, "name", None):
                obj.name = spec.name  # the seed story: a class without a name takes the registered one
        running: _Running | None = getattr(self._thread, "running", None)
        if running is not None:
            entry = Entry(spec, running.plugin)
            running.claims.append((kind, entry))
            return entry
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
        """Remove an in-process registration (tests, notebooks); refused to plugin code."""
        running: _Running | None = getattr(self._thread, "running", None)
        if running is not None:
            message = (
                f"plugin {running.plugin.name!r} ({running.plugin.origin}) tried to unregister {kind} {name!r}: "
                "plugin code cannot remove registrations"
            )
            raise InvalidPluginError(message)
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
