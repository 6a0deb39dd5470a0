"""PSGD Kron: preconditioned SGD with a Kronecker-factored preconditioner fitted online."""

from swift_optim_zoo.kron.kron import Kron

__all__ = ["Kron"]
