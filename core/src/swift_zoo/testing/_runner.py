"""Running checks on a subject: selection, exemptions, timing, and the report.

``check_loss`` / ``check_optimizer`` run every applicable named check (or those ``checks``
selects) and return a :class:`ConformanceReport`; with ``on_fail="raise"`` the first failure
raises :class:`swift_zoo.ConformanceError` instead. Exemptions come from ``expected_failures``
and from the class's ``conformance_exemptions`` ClassVar; each carries a reason. An exempted
check that fails is ``xfail``; one that passes is ``xpass``, a stale exemption that ``strict``
mode counts as a failure.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from swift_zoo._errors import ConformanceError
from swift_zoo.testing._advantage_checks import ADVANTAGE_CHECKS
from swift_zoo.testing._loss_checks import LOSS_CHECKS
from swift_zoo.testing._optimizer_checks import OPTIMIZER_CHECKS
from swift_zoo.testing._report import CheckResult, CheckSkipped, ConformanceReport
from swift_zoo.testing._subject import (
    advantage_instance,
    exemptions_of,
    is_advantage_like,
    is_loss_like,
    loss_instance,
    loss_label,
    optimizer_subject,
)
from swift_zoo.testing._threads import single_threaded

ON_FAIL = ("raise", "collect")


def loss_checks() -> dict[str, Callable[..., str]]:
    """Every loss check by name, in the order the suite runs them."""
    return {check.__name__: check for check in LOSS_CHECKS}


def advantage_checks() -> dict[str, Callable[..., str]]:
    """Every advantage-estimator check by name, in the order the suite runs them."""
    return {check.__name__: check for check in ADVANTAGE_CHECKS}


def optimizer_checks() -> dict[str, Callable[..., str]]:
    """Every optimizer check by name, in the order the suite runs them."""
    return {check.__name__: check for check in OPTIMIZER_CHECKS}


def select_checks(available: Mapping[str, Callable[..., str]],
                  checks: str | Iterable[str] | None) -> dict[str, Callable[..., str]]:
    """The checks ``checks`` selects: None (all), a pattern (glob, or a substring), or exact names."""
    if checks is None:
        return dict(available)
    if isinstance(checks, str):
        patterns = [p.strip() for p in checks.split(",") if p.strip()]
        chosen = {
            name: check for name, check in available.items()
            if any(fnmatch.fnmatchcase(name, p) or p in name for p in patterns)
        }
        return chosen
    names = list(checks)
    unknown = [n for n in names if n not in available]
    if unknown:
        message = f"unknown check(s) {unknown}; available: {', '.join(available)}"
        raise ValueError(message)
    return {name: available[name] for name in names}


def run_one(name: str, check: Callable[..., str], args: tuple[Any, ...], subject: str,
            reason: str | None) -> CheckResult:
    """Run one check; classify the outcome given the exemption ``reason`` (None: not exempted)."""
    start = time.perf_counter()
    try:
        note = check(*args)
    except CheckSkipped as exc:
        status, message = "skipped", exc.reason
    except ConformanceError as exc:
        status, message = "failed", exc.detail
    except Exception as exc:
        status, message = "failed", f"raised {type(exc).__name__}: {exc}"
    else:
        status, message = "passed", note or ""
    duration = time.perf_counter() - start
    if reason is not None:
        if status == "failed":
            status = "xfail"
        elif status == "passed":
            status = "xpass"
            message = f"passed although declared an expected failure ({reason}): remove the stale exemption"
    return CheckResult(name, status, message, duration, reason or "")


def _run(kind: str, label: str, selected: Mapping[str, Callable[..., str]], args: tuple[Any, ...],
         exemptions: Mapping[str, str], on_fail: str, strict: bool) -> ConformanceReport:
    if on_fail not in ON_FAIL:
        message = f"on_fail must be one of {ON_FAIL}, got {on_fail!r}"
        raise ValueError(message)
    report = ConformanceReport(label, kind, strict=strict)
    with single_threaded():
        for name, check in selected.items():
            result = run_one(name, check, args, label, exemptions.get(name))
            report.results.append(result)
            if on_fail == "raise" and (result.status == "failed" or (strict and result.status == "xpass")):
                raise ConformanceError(name, label, result.message)
    return report


def _exemptions(obj: Any, expected_failures: Mapping[str, str] | None,
                available: Mapping[str, Callable[..., str]], *, also_known: Iterable[str] = ()) -> dict[str, str]:
    """Class exemptions merged with ``expected_failures``; names outside ``available`` (and
    ``also_known``, the other kind's checks) are errors, and every reason must be non-empty."""
    merged = {**exemptions_of(obj), **dict(expected_failures or {})}
    known = set(available) | set(also_known)
    unknown = [name for name in merged if name not in known]
    if unknown:
        message = f"exemption(s) for unknown check(s) {unknown}; available: {', '.join(available)}"
        raise ValueError(message)
    for name, reason in merged.items():
        if not isinstance(reason, str) or not reason.strip():
            message = f"the exemption of {name} needs a reason (a non-empty string), got {reason!r}"
            raise ValueError(message)
    return {name: reason for name, reason in merged.items() if name in available}


def check_loss(
    loss: Any,
    *,
    on_fail: str = "raise",
    checks: str | Iterable[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    strict: bool = True,
    label: str | None = None,
) -> ConformanceReport:
    """Run the loss checks on ``loss`` (an instance, a ``BaseLoss`` subclass or a registered name).

    :param on_fail: ``"raise"`` raises :class:`swift_zoo.ConformanceError` at the first failure (or,
        under ``strict``, stale exemption); ``"collect"`` runs everything and returns the report.
    :param checks: ``None`` (all), a pattern (``"check_grad*"``, a substring, comma-separated
        alternatives) or an iterable of exact check names.
    :param expected_failures: ``{check name: reason}``, merged over the class's ``conformance_exemptions``.
    :param strict: an exempted check that passes (``xpass``) counts as a failure.
    :param label: the subject's name in the report (default: the class name).
    """
    return _check_instance("loss", loss_checks(), loss, loss_instance, on_fail=on_fail, checks=checks,
                           expected_failures=expected_failures, strict=strict, label=label)


def _check_instance(kind: str, available: Mapping[str, Callable[..., str]], obj: Any,
                    instance: Callable[[Any], Any], **options: Any) -> ConformanceReport:
    """The checks of ``kind`` on the instance ``instance(obj)`` (losses and advantage estimators)."""
    exemptions = _exemptions(obj, options["expected_failures"], available)
    subject = instance(obj)
    return _run(kind, options["label"] or loss_label(obj), select_checks(available, options["checks"]), (subject,),
                exemptions, options["on_fail"], options["strict"])


def check_optimizer(
    optimizer: Any,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    *,
    on_fail: str = "raise",
    checks: str | Iterable[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    strict: bool = True,
    label: str | None = None,
) -> ConformanceReport:
    """Run the optimizer checks on ``optimizer`` (a class, a registered name or a ``(class, kwargs)`` pair).

    ``optimizer_kwargs`` (else the class's ``example_kwargs()``, else its defaults) are passed to
    :func:`swift_zoo.build_optimizer` for every model the suite builds. Other parameters as in
    :func:`check_loss`.
    """
    available = optimizer_checks()
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    exemptions = _exemptions(subject.cls, expected_failures, available)
    return _run("optimizer", label or subject.label, select_checks(available, checks), (subject,), exemptions,
                on_fail, strict)


def check_advantage(
    estimator: Any,
    *,
    on_fail: str = "raise",
    checks: str | Iterable[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    strict: bool = True,
    label: str | None = None,
) -> ConformanceReport:
    """Run the advantage-estimator checks on ``estimator`` (an instance, a ``BaseAdvantage`` subclass or a
    registered name); parameters as in :func:`check_loss`."""
    return _check_instance("advantage", advantage_checks(), estimator, advantage_instance, on_fail=on_fail,
                           checks=checks, expected_failures=expected_failures, strict=strict, label=label)


def check_any(obj: Any, **kwargs: Any) -> ConformanceReport:
    """:func:`check_loss` for losses, :func:`check_advantage` for estimators, :func:`check_optimizer` otherwise."""
    if is_loss_like(obj):
        return check_loss(obj, **kwargs)
    if is_advantage_like(obj):
        return check_advantage(obj, **kwargs)
    return check_optimizer(obj, **kwargs)
