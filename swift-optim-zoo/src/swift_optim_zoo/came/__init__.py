"""CAME: confidence-guided, memory-efficient (factored) adaptive optimizer."""

from swift_optim_zoo.came.came import CAME

__all__ = ["CAME"]
