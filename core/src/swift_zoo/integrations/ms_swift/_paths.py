"""Where the ``--external_plugins`` file lives in the installed package (for ``swift-zoo ms-swift-plugin``)."""

from __future__ import annotations

from pathlib import Path


def external_plugin_path() -> Path:
    """The absolute path of ``external_plugin.py``, the file ms-swift's ``--external_plugins`` executes."""
    return Path(__file__).resolve().with_name("external_plugin.py")
