"""How zoo names appear in ms-swift: ``zoo:<name>``, never one of ms-swift's own names.

Every spelling the zoo registry resolves gets a key: ``zoo:<name>``, ``zoo:<alias>`` and the
qualified ``zoo:<plugin>:<name>`` (which works when two plugins provide the same bare name).
Listing reads entry points only; it imports neither torch nor any implementation.
"""

from __future__ import annotations

from swift_zoo._errors import AmbiguousNameError, UnknownNameError
from swift_zoo._registry import REGISTRY, Entry
from swift_zoo._specs import normalize_name

PREFIX = "zoo:"


def is_zoo_name(value: object) -> bool:
    """``True`` for a string naming a zoo entry in ms-swift (``zoo:...``, any case or spacing)."""
    return isinstance(value, str) and value.strip().lower().startswith(PREFIX)


def registry_name(host_name: str) -> str:
    """The registry spelling behind a ``zoo:`` name: ``"zoo:Loss-Zoo:DPO"`` -> ``"loss_zoo:dpo"``."""
    return normalize_name(host_name.strip()[len(PREFIX):])


def canonical(host_name: str) -> str:
    """The ``zoo:`` key under which a user-written zoo name is registered (normalised)."""
    return PREFIX + registry_name(host_name)


def host_names(kind: str) -> dict[str, str]:
    """``{"zoo:<spelling>": "<registry spelling>"}`` for every loss or optimizer the registry lists."""
    names: dict[str, str] = {}
    for entry in REGISTRY.entries(kind):
        for spelling in (entry.spec.name, *entry.spec.aliases):
            names[PREFIX + spelling] = spelling
            names[f"{PREFIX}{entry.plugin.name}:{spelling}"] = f"{entry.plugin.name}:{spelling}"
    return dict(sorted(names.items()))


def host_error(exc: UnknownNameError | AmbiguousNameError) -> UnknownNameError | AmbiguousNameError:
    """The same registry error, with every name spelled as ms-swift takes it (``zoo:...``)."""
    if isinstance(exc, UnknownNameError):
        return type(exc)(PREFIX + exc.name, [PREFIX + name for name in exc.available],
                         failed_plugins=exc.failed_plugins)
    return AmbiguousNameError(exc.kind, PREFIX + exc.name,
                              [(PREFIX + qualified, origin) for qualified, origin in exc.candidates])


def resolve(kind: str, host_name: str) -> Entry:
    """The registry entry behind ``zoo:<name>``; unknown and ambiguous names raise with ``zoo:`` spellings."""
    try:
        return REGISTRY.resolve(kind, registry_name(host_name))
    except (UnknownNameError, AmbiguousNameError) as exc:
        raise host_error(exc) from None
