"""One-line messages through ms-swift's own logger (so they appear where ms-swift's do), once each."""

from __future__ import annotations

import logging

_SEEN: set[str] = set()


def _logger() -> logging.Logger:
    try:
        from swift.utils import get_logger
    except ImportError:  # pragma: no cover - only without ms-swift
        return logging.getLogger("swift_zoo")
    return get_logger()


def log_once(message: str) -> None:
    """Log ``message`` at INFO level the first time it is seen in this process."""
    if message in _SEEN:
        return
    _SEEN.add(message)
    _logger().info(message)
