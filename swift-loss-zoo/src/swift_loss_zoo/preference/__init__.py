"""Paired, reference-based preference losses (the DPO family)."""

from swift_loss_zoo.preference._length_desensitized import ld_tail_logps
from swift_loss_zoo.preference._paired import FDivergencePairLoss, LogRatios, PairedReferenceLoss
from swift_loss_zoo.preference._weighting import sequence_log_sum_sq_probs
from swift_loss_zoo.preference.aot import AotLoss, AotUnpairedLoss
from swift_loss_zoo.preference.apo import ApoDownLoss, ApoZeroLoss
from swift_loss_zoo.preference.bco import BcoPairLoss
from swift_loss_zoo.preference.discopop import DiscoPopLoss
from swift_loss_zoo.preference.dpo import DpoLoss, DpoNormLoss
from swift_loss_zoo.preference.exo import ExoPairLoss
from swift_loss_zoo.preference.hinge import HingeLoss
from swift_loss_zoo.preference.ipo import IpoLoss
from swift_loss_zoo.preference.nca import NcaPairLoss
from swift_loss_zoo.preference.robust_dpo import RobustDpoLoss
from swift_loss_zoo.preference.rpo import RpoLoss
from swift_loss_zoo.preference.sft import SftLoss
from swift_loss_zoo.preference.sppo import SppoHardLoss

__all__ = [
    "AotLoss",
    "AotUnpairedLoss",
    "ApoDownLoss",
    "ApoZeroLoss",
    "BcoPairLoss",
    "DiscoPopLoss",
    "DpoLoss",
    "DpoNormLoss",
    "ExoPairLoss",
    "FDivergencePairLoss",
    "HingeLoss",
    "IpoLoss",
    "LogRatios",
    "NcaPairLoss",
    "PairedReferenceLoss",
    "RobustDpoLoss",
    "RpoLoss",
    "SftLoss",
    "SppoHardLoss",
    "ld_tail_logps",
    "sequence_log_sum_sq_probs",
]
