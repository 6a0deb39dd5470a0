"""Run a function right after a module executes, whether it is imported already or later.

ms-swift has no plugin discovery, so the integration attaches to the modules that hold what it
extends (``swift.loss.mapping``, ``swift.rlhf_trainers.dpo_trainer``, ...). A module imported
already is handed to the callback at once; otherwise a :class:`sys.meta_path` finder wraps that
module's ``exec_module`` and calls back after the module body ran, before anyone else sees it.
Stdlib only: importing this costs nothing measurable and imports neither torch nor ms-swift.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from importlib.abc import MetaPathFinder
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]


class PostImportFinder(MetaPathFinder):
    """Finds nothing itself: asks the finders after it and wraps the loader of watched modules."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callback]] = {}
        self._searching: set[str] = set()
        self._lock = threading.RLock()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.callbacks or fullname in self._searching:
            return None
        self._searching.add(fullname)
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._searching.discard(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            self.run(fullname, sys.modules.get(fullname, module))

        loader.exec_module = exec_module  # this loader instance serves this one module file
        return spec

    def run(self, fullname: str, module: ModuleType) -> None:
        with self._lock:
            pending = self.callbacks.pop(fullname, [])
        for callback in pending:
            callback(module)


_FINDER = PostImportFinder()


def when_imported(module_name: str, callback: Callback) -> None:
    """Call ``callback(module)`` now if ``module_name`` is imported, else right after it is."""
    module = sys.modules.get(module_name)
    if module is not None:
        callback(module)
        return
    with _FINDER._lock:
        _FINDER.callbacks.setdefault(module_name, []).append(callback)
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
