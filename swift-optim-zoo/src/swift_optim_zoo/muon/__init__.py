"""Muon: orthogonalised momentum for hidden matrices, an inner AdamW for everything else."""

from swift_optim_zoo.muon.muon import Muon
from swift_optim_zoo.muon.newton_schulz import newton_schulz_orthogonalize, newton_schulz_orthogonalize_batch

__all__ = ["Muon", "newton_schulz_orthogonalize", "newton_schulz_orthogonalize_batch"]
