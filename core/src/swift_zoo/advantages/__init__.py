"""The advantage-estimator contract: :class:`BaseAdvantage` (a third registry kind beside losses and optimizers)."""

from swift_zoo.advantages._base import ADVANTAGE_LEVELS, BaseAdvantage

__all__ = ["ADVANTAGE_LEVELS", "BaseAdvantage"]
