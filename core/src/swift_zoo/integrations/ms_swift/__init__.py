"""swift zoo inside ms-swift 4.6: ``--loss_type zoo:<name>`` and ``--optimizer zoo:<name>``.

Two ways in: pass ``--external_plugins $(swift-zoo ms-swift-plugin)`` to ``swift sft|pt|rlhf``, or
``pip install swift-zoo-ms-swift`` (a ``.pth`` hook that calls :func:`install` when ms-swift is
imported). ``docs/ms_swift.md`` has the name table, the kwargs rules and what is not wired (GRPO).
Importing this package imports neither torch nor ms-swift.
"""

from __future__ import annotations

from swift_zoo.integrations.ms_swift._bindings import KWARGS_ENV
from swift_zoo.integrations.ms_swift._install import TESTED, install, register_names
from swift_zoo.integrations.ms_swift._names import PREFIX
from swift_zoo.integrations.ms_swift._paths import external_plugin_path

__all__ = ["KWARGS_ENV", "PREFIX", "TESTED", "external_plugin_path", "install", "register_names"]
