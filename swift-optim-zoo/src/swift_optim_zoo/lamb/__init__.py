"""LAMB: layer-wise adaptive moments (Adam scaled by a per-tensor trust ratio)."""

from swift_optim_zoo.lamb.lamb import LAMB

__all__ = ["LAMB"]
