"""``parametrize_with_checks``: the conformance checks as pytest cases, scikit-learn style.

::

    from swift_zoo.testing import parametrize_with_checks

    @parametrize_with_checks([MyLoss, MyOptimizer], expected_failures={"check_gradcheck": "non-smooth clamp"})
    def test_conformance(subject, check):
        check(subject)

Each (subject, check) pair is one test with the id ``MyLoss-check_gradcheck`` (``pytest -k
check_gradcheck`` works); an expected failure becomes ``xfail(strict=strict)`` with its reason, so
a stale exemption fails the run. pytest is imported inside the function only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from swift_zoo.testing._report import CheckSkipped
from swift_zoo.testing._runner import _exemptions, advantage_checks, loss_checks, optimizer_checks, select_checks
from swift_zoo.testing._subject import (
    advantage_instance,
    is_advantage_like,
    is_loss_like,
    is_optimizer_like,
    loss_instance,
    loss_label,
    optimizer_subject,
)

ExpectedFailures = Mapping[str, str] | Callable[[Any], Mapping[str, str]] | None


class BoundCheck:
    """One named check, callable as ``check(subject)`` inside a test; a skip becomes ``pytest.skip``."""

    swift_zoo_check = True

    def __init__(self, name: str, function: Callable[..., str]) -> None:
        self.name = name
        self.function = function
        self.__name__ = name
        self.__doc__ = function.__doc__

    def __call__(self, subject: Any) -> str:
        import pytest

        try:
            return self.function(subject)
        except CheckSkipped as exc:
            pytest.skip(exc.reason)
        return ""  # pragma: no cover - pytest.skip raises

    def __repr__(self) -> str:
        return self.name


def conformance_cases(subjects: Iterable[Any], *, expected_failures: ExpectedFailures = None,
                      checks: str | Iterable[str] | None = None) -> list[tuple[str, Any, BoundCheck, str | None]]:
    """``(test id, subject, check, exemption reason or None)`` for every applicable pair."""
    every = {**loss_checks(), **optimizer_checks(), **advantage_checks()}
    if checks is not None and not isinstance(checks, str):
        checks = list(checks)
        unknown = [name for name in checks if name not in every]
        if unknown:
            message = f"unknown check(s) {unknown}; available: {', '.join(every)}"
            raise ValueError(message)
    cases = []
    for obj in subjects:
        if is_loss_like(obj):
            available = loss_checks()
            subject: Any = loss_instance(obj)
            label = loss_label(obj)
            owner = obj
        elif is_advantage_like(obj):
            available = advantage_checks()
            subject = advantage_instance(obj)
            label = loss_label(obj)
            owner = obj
        elif is_optimizer_like(obj) or isinstance(obj, str):
            subject = optimizer_subject(obj)
            available = optimizer_checks()
            label = subject.label
            owner = subject.cls
        else:
            message = (
                "parametrize_with_checks takes loss or advantage-estimator instances or classes, optimizer classes, "
                f"(optimizer class, kwargs) pairs or registered optimizer names; got {obj!r}"
            )
            raise TypeError(message)
        wanted = expected_failures(obj) if callable(expected_failures) else expected_failures
        exemptions = _exemptions(owner, wanted, available, also_known=every)
        chosen = checks if checks is None or isinstance(checks, str) else [n for n in checks if n in available]
        for name, function in select_checks(available, chosen).items():
            cases.append((f"{label}-{name}", subject, BoundCheck(name, function), exemptions.get(name)))
    return cases


def parametrize_with_checks(
    subjects: Iterable[Any],
    *,
    expected_failures: ExpectedFailures = None,
    strict: bool = True,
    checks: str | Iterable[str] | None = None,
) -> Any:
    """A ``pytest.mark.parametrize("subject, check", ...)`` decorator over every (subject, check) pair.

    :param subjects: loss or advantage-estimator instances or classes, optimizer classes,
        ``(optimizer class, kwargs)`` pairs, or registered optimizer names.
    :param expected_failures: ``{check name: reason}`` (or a callable ``subject -> dict``), merged
        over each class's ``conformance_exemptions``; these become ``pytest.mark.xfail(strict=strict)``.
    :param strict: a stale exemption (the check passes) fails the test run.
    :param checks: restrict to checks matching a pattern or an iterable of names.
    """
    import pytest

    params = []
    for test_id, subject, check, reason in conformance_cases(subjects, expected_failures=expected_failures,
                                                             checks=checks):
        marks = [pytest.mark.xfail(strict=strict, reason=reason)] if reason is not None else []
        params.append(pytest.param(subject, check, id=test_id, marks=marks))
    return pytest.mark.parametrize(("subject", "check"), params)
