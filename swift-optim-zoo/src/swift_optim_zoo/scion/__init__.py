"""Scion: steepest descent in a norm chosen per layer, through linear minimisation oracles."""

from swift_optim_zoo.scion.lmo import LMOS, lmo_for_role
from swift_optim_zoo.scion.scion import Scion

__all__ = ["LMOS", "Scion", "lmo_for_role"]
