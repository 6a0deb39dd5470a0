"""``swift-zoo plugins``, ``list`` and ``info``: read-only views of the registry.

``plugins`` and ``list`` import no implementation module (and so no torch); ``info`` imports the
one class it describes.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, TextIO

from swift_zoo._cli._render import as_json, table
from swift_zoo._errors import UnknownNameError
from swift_zoo._registry import KINDS, REGISTRY, Entry
from swift_zoo._specs import normalize_name

KIND_ARGS = {"losses": "loss", "optimizers": "optimizer", "schedulers": "scheduler", "advantages": "advantage"}


KIND_TITLES = {"loss": "losses", "optimizer": "optimizers", "scheduler": "schedulers", "advantage": "advantage estimators"}


def cmd_plugins(*, json_output: bool, out: TextIO) -> int:
    records = REGISTRY.plugins()
    if json_output:
        print(as_json([r.as_dict() for r in records]), file=out)
        return 0
    if not records:
        print("no swift zoo plugin is installed (entry-point group 'swift_zoo')", file=out)
        return 0
    rows = [
        (r.name, r.distribution or "-", r.version or "-", r.status, r.entry_point,
         "; ".join(e.error_summary for e in r.errors))
        for r in records
    ]
    print(table(("plugin", "distribution", "version", "status", "entry point", "error"), rows), file=out)
    return 0


def cmd_list(kind_arg: str | None, *, json_output: bool, out: TextIO) -> int:
    kinds = [KIND_ARGS[kind_arg]] if kind_arg else list(KINDS)
    entries: list[Entry] = [e for k in kinds for e in REGISTRY.entries(k)]
    if json_output:
        print(as_json([e.as_dict() for e in entries]), file=out)
        return 0
    for k in kinds:
        rows = [
            (e.qualified_name, ", ".join(e.spec.aliases), e.distribution or "(in-process)", e.spec.summary)
            for e in entries if e.kind == k
        ]
        print(f"{KIND_TITLES[k]} ({len(rows)})", file=out)
        if rows:
            print(table(("name", "aliases", "distribution", "summary"), rows), file=out)
        print(file=out)
    failed = REGISTRY.failed_plugins()
    if failed:
        names = ", ".join(p.name for p in failed)
        print(f"warning: {len(failed)} plugin(s) failed to load: {names}; see `swift-zoo plugins`", file=out)
    return 0


class UnknownEntryError(UnknownNameError):
    """A name that no kind provides (``swift-zoo info`` searches them all)."""

    kind = "name"
    plural = "names (losses, optimizers, schedulers, advantage estimators)"


def _resolve_any(name: str, kind_arg: str | None) -> Entry:
    """The entry ``name`` designates in any kind (or ``kind_arg``'s). Unknown everywhere: the error of the kind
    holding the closest name (``galoree`` -> "unknown optimizer ...; did you mean 'galore_adamw'?"), or one
    listing every kind's names when nothing is close."""
    kinds = [KIND_ARGS[kind_arg]] if kind_arg else list(KINDS)
    errors: list[UnknownNameError] = []
    for k in kinds:
        try:
            return REGISTRY.resolve(k, name)
        except UnknownNameError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    wanted = normalize_name(name)
    scored = [(max(difflib.SequenceMatcher(None, wanted, p).ratio() for p in e.possibilities), i)
              for i, e in enumerate(errors) if e.possibilities]
    if scored:
        raise errors[max(scored)[1]]
    everything = sorted({n for e in errors for n in e.available})
    raise UnknownEntryError(wanted, everything, failed_plugins=errors[0].failed_plugins)


def describe(entry: Entry) -> dict[str, Any]:
    """Everything ``swift-zoo info`` shows about one entry (imports its target)."""
    target = REGISTRY.load_entry(entry)
    info = entry.as_dict()
    try:
        signature = inspect.signature(target)
        info["signature"] = f"{entry.name}{signature}"
    except (TypeError, ValueError):
        info["signature"] = None
    declared = getattr(target, "inputs", None)
    if entry.kind in ("loss", "advantage") and getattr(target, "equivalents", ()):
        info["equivalents"] = [e.describe() for e in target.equivalents]
    if entry.kind in ("loss", "advantage") and declared:
        info["inputs"] = [spec.describe() for spec in declared]
        info["reduction_unit"] = getattr(target, "reduction_unit", None)
        if entry.kind == "advantage":
            info["level"] = getattr(target, "level", None)
        for flag in ("order_dependent", "batch_dependent"):
            if getattr(target, flag, None):
                info[flag] = getattr(target, flag)
    info["doc"] = inspect.cleandoc(target.__doc__ or "")
    return info


def cmd_info(name: str, kind_arg: str | None, *, json_output: bool, out: TextIO) -> int:
    info = describe(_resolve_any(name, kind_arg))
    if json_output:
        print(as_json(info), file=out)
        return 0
    lines = [f"{info['qualified_name']}  ({info['kind']}, from {info['distribution'] or 'this process'} {info['version'] or ''})".rstrip()]
    if info.get("aliases"):
        lines.append(f"aliases: {', '.join(info['aliases'])}")
    lines.append(f"target: {info['target']}")
    if info.get("summary"):
        lines.append(f"summary: {info['summary']}")
    if info.get("reference"):
        lines.append(f"reference: {info['reference']}")
    if info.get("signature"):
        lines.append(f"signature: {info['signature']}")
    for key in ("state_bytes", "roles", "needs_model", "hooks", "license",
                "reduction_unit", "level", "order_dependent", "batch_dependent"):
        value = info.get(key)
        if value not in (None, "", (), [], False):
            lines.append(f"{key.replace('_', ' ')}: {', '.join(value) if isinstance(value, (list, tuple)) else value}")
    if isinstance(info.get("distributed"), dict):
        lines.append("distributed:")
        lines += [f"  {wrapper}: {s['status']}" + (f" -- {s['how']}" if s["how"] else "")
                  for wrapper, s in info["distributed"].items()]
    if info.get("equivalents"):
        lines.append("equivalent to:")
        lines += [f"  {line}" for line in info["equivalents"]]
    if info.get("inputs"):
        lines.append("inputs:")
        lines += [f"  {line}" for line in info["inputs"]]
    if info.get("doc"):
        lines += ["", info["doc"]]
    print("\n".join(lines), file=out)
    return 0
