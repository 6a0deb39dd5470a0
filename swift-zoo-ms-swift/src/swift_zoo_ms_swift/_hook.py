"""The start-up hook: wait for ms-swift to be imported, then let the zoo in.

``swift_zoo_ms_swift.pth`` (installed at the root of ``site-packages``) runs :func:`install` in every
interpreter of the environment. It adds one entry to :data:`sys.meta_path` that does nothing until
the package ``swift`` (ms-swift) is imported; right after ``swift/__init__.py`` has run it calls
:func:`swift_zoo.integrations.ms_swift.install`, which attaches the zoo to the ms-swift modules as
they load and logs one line. Until then neither torch, ms-swift nor swift_zoo is imported: this
module uses only ``os`` and ``sys``, which every interpreter has loaded already
(``benchmarks/bench_ms_swift_startup.py`` measures the cost).

No ``from __future__ import annotations`` here, unlike the rest of swift zoo: the ``__future__`` import
alone would cost this start-up path about as much as the rest of the module.
:class:`SwiftImportHook` repeats the few lines of
``swift_zoo.integrations.ms_swift._post_import.PostImportFinder`` on purpose: importing ``swift_zoo``
here would put its import cost on every interpreter start.

Off switches, read at start-up:

* ``SWIFT_ZOO_MS_SWIFT_DISABLE=1``: this hook only (``--external_plugins $(swift-zoo ms-swift-plugin)``
  still works);
* ``SWIFT_ZOO_DISABLE_PLUGIN_AUTOLOAD=1``: swift zoo's switch for every automatic plugin loading.
"""

import os
import sys

DISABLE_ENV = "SWIFT_ZOO_MS_SWIFT_DISABLE"
AUTOLOAD_ENV = "SWIFT_ZOO_DISABLE_PLUGIN_AUTOLOAD"
TRIGGER = "swift"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def disabled() -> bool:
    """Whether an environment switch turns the hook off."""
    return _flag(DISABLE_ENV) or _flag(AUTOLOAD_ENV)


def activate() -> None:
    """Hand over to swift zoo's ms-swift integration; never breaks the import of ms-swift."""
    try:
        from swift_zoo.integrations.ms_swift import install as install_integration
        from swift_zoo_ms_swift.__about__ import __version__

        install_integration(source=f"swift-zoo-ms-swift {__version__}; {DISABLE_ENV}=1 turns it off")
    except Exception as exc:  # a broken integration must not take ms-swift down with it
        import warnings

        warnings.warn(f"swift-zoo-ms-swift could not attach swift zoo to ms-swift: {type(exc).__name__}: {exc}. "
                      f"Set {DISABLE_ENV}=1 to silence this.", stacklevel=2)


class SwiftImportHook:
    """A :data:`sys.meta_path` finder that finds nothing; it wraps the loader of ``swift`` once."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != TRIGGER:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: object) -> None:
            original(module)
            activate()

        loader.exec_module = exec_module
        return spec


def install() -> bool:
    """Called by the ``.pth`` at start-up: add the hook unless switched off; ``True`` when active."""
    if disabled():
        return False
    if TRIGGER in sys.modules:  # ms-swift already imported (a .pth ran late): attach now
        activate()
        return True
    if not any(isinstance(finder, SwiftImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, SwiftImportHook())
    return True
