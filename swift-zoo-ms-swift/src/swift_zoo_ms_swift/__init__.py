"""swift-zoo-ms-swift: ms-swift sees the swift zoo with no ``--external_plugins`` (see ``_hook``).

Imported at every interpreter start (the ``.pth`` imports ``_hook``), so it imports nothing itself:
``__version__`` is read from ``__about__`` on first access.
"""


def __getattr__(name: str) -> str:
    if name == "__version__":
        from swift_zoo_ms_swift.__about__ import __version__

        return __version__
    message = f"module 'swift_zoo_ms_swift' has no attribute {name!r}"
    raise AttributeError(message)


__all__ = ["__version__"]
