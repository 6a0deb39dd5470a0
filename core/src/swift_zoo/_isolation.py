"""Running a plugin's code (its module, its hooks, its lazily imported targets) inside the host.

A plugin is somebody else's code running in our process (DESIGN §9). :class:`PluginCode` is the one
place where the registry runs it:

* any exception the code raises is caught and kept on ``call.error`` -- ``SystemExit`` included (a
  plugin that calls ``argparse.parse_args()`` at import exits with status 2), as is any other
  ``BaseException`` but :data:`PROPAGATED` (``KeyboardInterrupt``: the user's Ctrl-C still stops the
  program);
* what it prints to ``sys.stdout`` / ``sys.stderr`` is captured in ``call.output`` instead of reaching
  the host's streams, where a plugin's usage text would read like the host's own. The registry attaches
  it to the plugin's failure, or echoes it to stderr under the plugin's name when the plugin loads.

Output written straight to the file descriptors (``os.write(1, ...)``, C extensions) is not captured.
``sys.stdout`` is process-wide, so a print from another thread during the call is captured too (the
registry runs plugin code under its lock, where only discovery runs).
"""

from __future__ import annotations

import contextlib
import io
from types import TracebackType

#: Exceptions that pass through plugin isolation: the user interrupting the program.
PROPAGATED: tuple[type[BaseException], ...] = (KeyboardInterrupt,)


class PluginCode:
    """``with PluginCode() as call: ...`` runs plugin code; afterwards ``call.error`` and ``call.output``."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.output = ""
        self._buffer = io.StringIO()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> PluginCode:
        self._stack.enter_context(contextlib.redirect_stdout(self._buffer))
        self._stack.enter_context(contextlib.redirect_stderr(self._buffer))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        self._stack.close()
        self.output = self._buffer.getvalue()
        if exc is None or isinstance(exc, PROPAGATED):
            return False
        self.error = exc
        return True


def describe_exit(error: BaseException) -> str:
    """``SystemExit`` said plainly (``"called sys.exit(2)"``); other errors as ``Type: message``."""
    if isinstance(error, SystemExit):
        return f"SystemExit: the plugin called sys.exit({error.code!r})"
    return f"{type(error).__name__}: {error}"


def last_line(output: str, limit: int = 200) -> str:
    """The last non-empty line of captured output, shortened to ``limit`` characters."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 3] + "..."
