"""ADOPT: Adam with the second moment taken before the current gradient."""

from swift_optim_zoo.adopt.adopt import ADOPT

__all__ = ["ADOPT"]
