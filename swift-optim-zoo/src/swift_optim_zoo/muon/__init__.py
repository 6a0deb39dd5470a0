"""Muon and its variants: orthogonalised momentum for hidden matrices, an inner AdamW for everything else."""

from swift_optim_zoo.muon.adamuon import AdaMuon
from swift_optim_zoo.muon.muon import Muon
from swift_optim_zoo.muon.muon_clip import MuonClip
from swift_optim_zoo.muon.newton_schulz import newton_schulz_orthogonalize, newton_schulz_orthogonalize_batch
from swift_optim_zoo.muon.normuon import NorMuon

__all__ = ["AdaMuon", "Muon", "MuonClip", "NorMuon", "newton_schulz_orthogonalize", "newton_schulz_orthogonalize_batch"]
