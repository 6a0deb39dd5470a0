"""Results of conformance checks: :class:`CheckResult`, :class:`ConformanceReport`, and the
:class:`CheckSkipped` signal a check raises when it does not apply to its subject.

Statuses:

* ``passed`` -- the check ran and held;
* ``failed`` -- the check ran and did not hold (or raised);
* ``skipped`` -- the check does not apply (a capability declaration, a missing device); the
  message says why;
* ``xfail`` -- the check failed and an exemption (``expected_failures`` or the class's
  ``conformance_exemptions``) with a reason covers it;
* ``xpass`` -- the check passed although it is declared as an expected failure: a stale
  exemption, which strict mode counts as a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("passed", "failed", "skipped", "xfail", "xpass")


class CheckSkipped(Exception):
    """Raised by a check that does not apply to its subject; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one named check on one subject."""

    name: str
    status: str
    message: str = ""
    duration: float = 0.0
    reason: str = ""  # the exemption's reason (xfail / xpass)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            message = f"CheckResult {self.name!r}: status must be one of {STATUSES}, got {self.status!r}"
            raise ValueError(message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "duration": round(self.duration, 6),
            "reason": self.reason,
        }


@dataclass
class ConformanceReport:
    """Every check run on one subject (a loss or an optimizer), in order.

    ``ok`` is true when nothing failed, and, under ``strict``, no exemption went stale (xpass).
    """

    subject: str
    kind: str  # "loss", "optimizer" or "advantage"
    results: list[CheckResult] = field(default_factory=list)
    strict: bool = True

    @property
    def ok(self) -> bool:
        bad = {"failed", "xpass"} if self.strict else {"failed"}
        return not any(r.status in bad for r in self.results)

    def by_status(self, status: str) -> list[CheckResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failures(self) -> list[CheckResult]:
        """Failed checks, and under ``strict`` stale exemptions too."""
        bad = {"failed", "xpass"} if self.strict else {"failed"}
        return [r for r in self.results if r.status in bad]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        message = f"no check named {name!r} in the report for {self.subject}; ran: {', '.join(self.names)}"
        raise KeyError(message)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.results]

    @property
    def duration(self) -> float:
        return sum(r.duration for r in self.results)

    def counts(self) -> dict[str, int]:
        return {status: len(self.by_status(status)) for status in STATUSES}

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "kind": self.kind,
            "ok": self.ok,
            "strict": self.strict,
            "counts": self.counts(),
            "duration": round(self.duration, 6),
            "results": [r.as_dict() for r in self.results],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.as_dict(), **kwargs)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items() if n)
        verdict = "OK" if self.ok else "FAILED"
        return f"{self.kind} {self.subject}: {verdict} ({counts or 'no checks'}; {self.duration:.2f} s)"

    def format_table(self) -> str:
        """An aligned text table: check, status, seconds, message (exemption reasons included)."""
        return format_reports_table([self])

    def __str__(self) -> str:
        return self.format_table()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _detail(result: CheckResult) -> str:
    parts = []
    if result.message:
        parts.append(_one_line(result.message))
    if result.reason and result.reason not in result.message:
        parts.append(f"[exemption: {_one_line(result.reason)}]")
    return " ".join(parts)


def format_reports_table(reports: list[ConformanceReport]) -> str:
    """One table for several reports (a subject column is added when there are several).

    Messages are printed whole, on one line each: a failure's expected-vs-found must not be cut.
    """
    show_subject = len(reports) > 1
    rows = []
    for report in reports:
        for r in report.results:
            row = [report.subject] if show_subject else []
            row += [r.name, r.status.upper() if r.status in {"failed", "xpass"} else r.status,
                    f"{r.duration:.3f}", _detail(r)]
            rows.append(row)
    header = (["subject"] if show_subject else []) + ["check", "status", "s", "message"]
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header) - 1)]

    def line(cells: list[str]) -> str:
        return ("  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths)) + "  " + cells[-1]).rstrip()

    lines = [line(header), "-" * (sum(widths) + 2 * len(widths) + 7)]
    lines += [line(row) for row in rows]
    lines.append("")
    lines += [report.summary() for report in reports]
    return "\n".join(lines)
