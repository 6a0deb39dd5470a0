"""Prodigy: learning-rate-free Adam (D-Adaptation with a distance estimate)."""

from swift_optim_zoo.prodigy.prodigy import Prodigy

__all__ = ["Prodigy"]
