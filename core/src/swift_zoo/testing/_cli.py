"""``swift-zoo check <distribution|plugin|name>``: run the suite on what a package registers.

Plugins are loaded strictly (``SWIFT_ZOO_STRICT_PLUGINS=1``), so a plugin that fails to load
fails the command. torch and the checks are imported only after plugin discovery.

Exit status (the ``swift-zoo`` codes): 0 when every check passed (or was skipped / an honoured exemption),
1 when a check failed or an exemption went stale, 2 when nothing matched (no entry, or ``-k`` selects no
check), 3 when a plugin or a target failed to load.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from swift_zoo._registry import (
    REGISTRY,
    STRICT_ENV,
    Entry,
    list_advantages,
    list_losses,
    list_optimizers,
    reload_plugins,
)
from swift_zoo._specs import normalize_name

EXIT_OK, EXIT_FAILED, EXIT_NO_MATCH, EXIT_PLUGIN = 0, 1, 2, 3
LOAD_CHECK = "load"


def _normal(text: str | None) -> str:
    return normalize_name(text) if text else ""


def entry_matches(entry: Entry, target: str) -> bool:
    """Whether ``target`` names the entry's distribution, plugin, name, an alias, or qualified name."""
    wanted = _normal(target)
    return wanted in {
        _normal(entry.distribution),
        _normal(entry.plugin.name),
        entry.name,
        entry.qualified_name,
        *entry.spec.aliases,
    }


def _entries() -> list[Entry]:
    return [*list_losses(), *list_optimizers(), *list_advantages()]


def matching_entries(target: str) -> list[Entry]:
    """Losses, then optimizers, then advantage estimators whose distribution / plugin / name matches ``target``."""
    return [e for e in _entries() if entry_matches(e, target)]


def _no_match_message(target: str) -> str:
    entries = _entries()
    distributions = sorted({e.distribution for e in entries if e.distribution})
    plugins = sorted({e.plugin.name for e in entries})
    return (
        f"swift-zoo check: nothing matches {target!r} (normalised {_normal(target)!r}). Searched the distribution "
        f"names, plugin names and entry names of {len(list_losses())} losses, {len(list_optimizers())} "
        f"optimizers and {len(list_advantages())} advantage estimators. Distributions: "
        f"{', '.join(distributions) or 'none'}; plugins: {', '.join(plugins) or 'none'}."
    )


def _failed_report(entry: Entry, check: str, message: str) -> Any:
    from swift_zoo.testing._report import CheckResult, ConformanceReport

    return ConformanceReport(entry.qualified_name, entry.kind, [CheckResult(check, "failed", message)])


def run_entry(entry: Entry, pattern: str | None) -> Any:
    """The :class:`ConformanceReport` of one registry entry (a load failure is a failed ``load`` check)."""
    from swift_zoo.testing._runner import check_advantage, check_loss, check_optimizer

    try:
        target = REGISTRY.load_entry(entry)
    except Exception as exc:
        message = f"could not load {entry.spec.target_path}: {type(exc).__name__}: {exc}"
        return _failed_report(entry, LOAD_CHECK, message)
    try:
        if entry.kind == "loss":
            return check_loss(target, on_fail="collect", checks=pattern, label=entry.qualified_name)
        if entry.kind == "advantage":
            return check_advantage(target, on_fail="collect", checks=pattern, label=entry.qualified_name)
        return check_optimizer(entry.qualified_name, on_fail="collect", checks=pattern, label=entry.qualified_name)
    except Exception as exc:
        return _failed_report(entry, "build", f"could not build it for checking: {type(exc).__name__}: {exc}")


def run_check_cli(target: str, *, as_json: bool = False, pattern: str | None = None, out: TextIO | None = None) -> int:
    """Run every check on every loss, optimizer and advantage estimator ``target`` matches; print a table or JSON.

    :param target: a distribution (``swift-loss-zoo``), a plugin (``loss_zoo``), an entry name
        (``cross_entropy``) or a qualified name (``loss_zoo:cross_entropy``); normalised.
    :param as_json: print ``{"target", "ok", "reports": [...]}`` instead of a table.
    :param pattern: restrict to checks matching a glob / substring (comma-separated alternatives).
    :returns: 0 all passed, 1 failures, 2 nothing matched (no entry, or no check), 3 a plugin or target failed to load.
    """
    out = sys.stdout if out is None else out
    previous = os.environ.get(STRICT_ENV)
    os.environ[STRICT_ENV] = "1"
    try:
        reload_plugins()
        try:
            entries = matching_entries(target)
        except Exception as exc:
            message = f"swift-zoo check: plugin discovery failed (strict mode): {exc}"
            _emit(out, as_json, {"target": target, "ok": False, "error": message, "reports": []}, message)
            return EXIT_PLUGIN
        if not entries:
            message = _no_match_message(target)
            _emit(out, as_json, {"target": target, "ok": False, "error": message, "reports": []}, message)
            return EXIT_NO_MATCH
        unselected = _pattern_selects_nothing(pattern, {entry.kind for entry in entries})
        if unselected:
            _emit(out, as_json, {"target": target, "ok": False, "error": unselected, "reports": []}, unselected)
            return EXIT_NO_MATCH
        reports = [run_entry(entry, pattern) for entry in entries]
        if pattern:  # subjects none of whose checks match the pattern (a loss check pattern on an estimator)
            reports = [report for report in reports if report.results]
    finally:
        if previous is None:
            os.environ.pop(STRICT_ENV, None)
        else:
            os.environ[STRICT_ENV] = previous
    ok = all(report.ok for report in reports)
    if as_json:
        json.dump({"target": target, "ok": ok, "reports": [r.as_dict() for r in reports]}, out, indent=2)
        out.write("\n")
    else:
        from swift_zoo.testing._report import format_reports_table

        out.write(format_reports_table(reports) + "\n")
        failed = sum(not r.ok for r in reports)
        verdict = "all passed" if ok else f"{failed} of {len(reports)} failed"
        out.write(f"swift-zoo check {target}: {len(reports)} checked, {verdict}\n")
    if any(result.name == LOAD_CHECK and result.status == "failed" for report in reports for result in report):
        return EXIT_PLUGIN
    return EXIT_OK if ok else EXIT_FAILED


def _pattern_selects_nothing(pattern: str | None, kinds: set[str]) -> str | None:
    """Why ``-k pattern`` is a usage error (it selects no check for the matched kinds), or ``None``."""
    if pattern is None:
        return None
    from swift_zoo.testing._runner import loss_checks, optimizer_checks, select_checks

    available = {**(loss_checks() if "loss" in kinds else {}), **(optimizer_checks() if "optimizer" in kinds else {})}
    if select_checks(available, pattern):
        return None
    return (
        f"swift-zoo check: -k {pattern!r} selects no check, so nothing would be checked; checks: "
        f"{', '.join(available)}"
    )


def _emit(out: TextIO, as_json: bool, data: dict[str, Any], message: str) -> None:
    if as_json:
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        out.write(message + "\n")
