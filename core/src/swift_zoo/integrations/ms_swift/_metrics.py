"""A zoo loss's metrics, handed to ms-swift's logger as ``zoo/<name>``."""

from __future__ import annotations

from typing import Any

PREFIX = "zoo/"


def report_metrics(trainer: Any, loss: Any) -> None:
    """Add the loss's last metrics to the trainer's ``custom_metrics`` (averaged and logged per step)."""
    store = getattr(trainer, "custom_metrics", None)
    if store is None:
        return
    mode = "train" if trainer.model.training else "eval"
    for key, value in loss.metrics.items():
        store[mode][PREFIX + key].update(value)
