"""swift-zoo-ms-swift: ms-swift sees the swift zoo with no ``--external_plugins`` (see ``_hook``)."""

from swift_zoo_ms_swift.__about__ import __version__

__all__ = ["__version__"]
