"""The exceptions swift zoo raises.

Every message is built first and says what was expected and what came; structured fields
stay on the exception so callers can act on them without parsing text.

SwiftZooError
 ├── UnknownNameError (+ KeyError)
 │    ├── UnknownLossError
 │    ├── UnknownOptimizerError
 │    ├── UnknownSchedulerError
 │    └── UnknownAdvantageError
 ├── AmbiguousNameError (+ KeyError)
 ├── PluginLoadError
 ├── PluginImportError (+ ImportError)
 ├── InvalidPluginError (+ TypeError)
 ├── ConfigError (+ ValueError)
 ├── LossInputError (+ ValueError)
 ├── OptimizerModeError (+ RuntimeError)
 ├── OptimizerStateError (+ ValueError)
 ├── UnsupportedShardingError (+ RuntimeError)
 ├── NonFiniteGradientError (+ FloatingPointError)
 └── ConformanceError (+ AssertionError)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from swift_zoo._isolation import describe_exit, last_line


class SwiftZooError(Exception):
    """Base class of every error raised by swift zoo."""


def close_matches(name: str, possibilities: Iterable[str], n: int = 3, *, cutoff: float = 0.6) -> list[str]:
    """The up-to-``n`` names of ``possibilities`` closest to ``name`` (difflib similarity >= ``cutoff``)."""
    return difflib.get_close_matches(name, sorted(set(possibilities)), n=n, cutoff=cutoff)


class UnknownNameError(SwiftZooError, KeyError):
    """A name that no registered plugin provides."""

    kind = "entry"
    plural = "entries"

    def __init__(
        self,
        name: str,
        available: Sequence[str] = (),
        *,
        failed_plugins: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.available = tuple(sorted(available))
        self.possibilities = close_matches(name, self.available)
        self.failed_plugins = tuple(failed_plugins)
        super().__init__(self.format_message())

    def format_message(self) -> str:
        message = f"unknown {self.kind} {self.name!r}"
        if self.possibilities:
            message += f"; did you mean {' or '.join(repr(p) for p in self.possibilities)}?"
        shown = ", ".join(self.available) if self.available else "none"
        message += f" Available {self.plural}: {shown}."
        if self.failed_plugins:
            message += (
                f" Note: {len(self.failed_plugins)} plugin(s) failed to load "
                f"({', '.join(self.failed_plugins)}) and may provide it; run `swift-zoo plugins`."
            )
        return message

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.format_message()


class UnknownLossError(UnknownNameError):
    kind = "loss"
    plural = "losses"


class UnknownOptimizerError(UnknownNameError):
    kind = "optimizer"
    plural = "optimizers"


class UnknownSchedulerError(UnknownNameError):
    kind = "scheduler"
    plural = "schedulers"


class UnknownAdvantageError(UnknownNameError):
    kind = "advantage estimator"
    plural = "advantage estimators"


class AmbiguousNameError(SwiftZooError, KeyError):
    """A bare name that several plugins provide with different targets."""

    def __init__(self, kind: str, name: str, candidates: Sequence[tuple[str, str]], *, reason: str = "") -> None:
        # candidates: (qualified name, "distribution version"); reason: why, when not "several plugins provide it"
        self.kind = kind
        self.name = name
        self.candidates = tuple(candidates)
        self.reason = reason
        super().__init__(self.format_message())

    def format_message(self) -> str:
        reason = self.reason or f"{len(self.candidates)} plugins provide it"
        lines = [f"{self.kind} name {self.name!r} is ambiguous: {reason}. Use a qualified name:"]
        lines += [f"  {qualified}  (from {origin})" for qualified, origin in self.candidates]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_message()


class PluginLoadError(SwiftZooError):
    """A plugin whose module or hook failed; recorded, warned about, raised in strict mode."""

    def __init__(
        self,
        plugin: str,
        *,
        distribution: str | None,
        version: str | None,
        entry_point: str,
        error: BaseException,
        stage: str = "import",
        output: str = "",
    ) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        self.entry_point = entry_point
        self.error = error
        self.stage = stage
        self.output = output  # what the plugin printed while it ran (captured, not shown on the host's streams)
        super().__init__(self.format_message())

    @property
    def origin(self) -> str:
        if self.distribution is None:
            return "an unknown distribution"
        return f"{self.distribution} {self.version}"

    @property
    def error_summary(self) -> str:
        summary = describe_exit(self.error)
        printed = last_line(self.output)
        return f"{summary} (it printed: {printed!r})" if printed else summary

    def format_message(self) -> str:
        uninstall = f" or `pip uninstall {self.distribution}`" if self.distribution else ""
        return (
            f"swift zoo plugin {self.plugin!r} ({self.entry_point}, from {self.origin}) failed at "
            f"{self.stage}: {self.error_summary}. Set SWIFT_ZOO_DISABLE_PLUGINS={self.plugin} to "
            f"skip it{uninstall}."
        )


class PluginImportError(SwiftZooError, ImportError):
    """A lazy ``"module:attr"`` target that could not be imported."""

    def __init__(self, qualified_name: str, target: str, origin: str, error: BaseException, output: str = "") -> None:
        self.qualified_name = qualified_name
        self.target = target
        self.origin = origin
        self.error = error
        self.output = output
        printed = last_line(output)
        super().__init__(
            f"{qualified_name} (from {origin}) points at {target!r}, which could not be imported: "
            f"{describe_exit(error)}" + (f" (it printed: {printed!r})" if printed else "")
        )


class InvalidPluginError(SwiftZooError, TypeError):
    """A plugin returned something that breaks the contract (wrong type, bad name, missing metadata)."""


class ConfigError(SwiftZooError, ValueError):
    """A configuration value or key that does not fit what the target accepts."""

    def __init__(self, message: str, *, key: str | None = None, expected: str | None = None,
                 found: object = None) -> None:
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(message)


class LossInputError(SwiftZooError, ValueError):
    """A loss received inputs that do not match what it declares."""


class OptimizerModeError(SwiftZooError, RuntimeError):
    """An optimizer was used in the wrong mode (e.g. schedule-free ``step()`` in eval mode)."""


class OptimizerStateError(SwiftZooError, ValueError):
    """A state dict that this optimizer cannot load (saved by another optimizer kind, or malformed)."""


class UnsupportedShardingError(SwiftZooError, RuntimeError):
    """An optimizer met parameters sharded in a way its method cannot be correct on (raised at the first
    step, naming the optimizer, the wrapper and what to do instead): never a silent wrong update."""


class NonFiniteGradientError(SwiftZooError, FloatingPointError):
    """A gradient held NaN or Inf and the optimizer's policy is ``"raise"`` (see :class:`swift_zoo.optim.ZooOptimizer`)."""

    def __init__(self, message: str, *, parameters: Sequence[str] = ()) -> None:
        self.parameters = tuple(parameters)
        super().__init__(message)


class ConformanceError(SwiftZooError, AssertionError):
    """A conformance check failed; the message says what was expected and what was found."""

    def __init__(self, check: str, subject: str, message: str) -> None:
        self.check = check
        self.subject = subject
        self.detail = message
        super().__init__(f"{check} failed for {subject}: {message}")
