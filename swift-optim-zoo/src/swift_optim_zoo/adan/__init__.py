"""Adan: adaptive Nesterov momentum."""

from swift_optim_zoo.adan.adan import Adan

__all__ = ["Adan"]
