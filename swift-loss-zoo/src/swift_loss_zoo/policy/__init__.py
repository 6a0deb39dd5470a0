"""On-policy RL losses (GRPO family, CISPO, SAPO, GSPO, LUSPO, GMPO, VESPO, GPG, Clip-Cov, KL-Cov, PPO), a KL
penalty, and the advantage helpers (thin wrappers over the registered estimators of ``swift_loss_zoo.advantages``)."""

from swift_loss_zoo.policy.advantages import GAEResult, gae_advantages, group_advantages, rloo_advantages
from swift_loss_zoo.policy.bnpo import BNPOLoss
from swift_loss_zoo.policy.cispo import CISPOLoss
from swift_loss_zoo.policy.clip_cov import ClipCovLoss
from swift_loss_zoo.policy.dapo import DAPOLoss
from swift_loss_zoo.policy.dr_grpo import DrGRPOLoss
from swift_loss_zoo.policy.gmpo import GMPOLoss
from swift_loss_zoo.policy.gpg import GPGLoss
from swift_loss_zoo.policy.grpo import GRPOLoss
from swift_loss_zoo.policy.gspo import GSPOLoss
from swift_loss_zoo.policy.kl_cov import KLCovLoss
from swift_loss_zoo.policy.kl_penalty import KLPenaltyLoss
from swift_loss_zoo.policy.luspo import LUSPOLoss
from swift_loss_zoo.policy.ppo import PPOLoss
from swift_loss_zoo.policy.sapo import SAPOLoss
from swift_loss_zoo.policy.vespo import VESPOLoss

__all__ = [
    "BNPOLoss",
    "CISPOLoss",
    "ClipCovLoss",
    "DAPOLoss",
    "DrGRPOLoss",
    "GAEResult",
    "GMPOLoss",
    "GPGLoss",
    "GRPOLoss",
    "GSPOLoss",
    "KLCovLoss",
    "KLPenaltyLoss",
    "LUSPOLoss",
    "PPOLoss",
    "SAPOLoss",
    "VESPOLoss",
    "gae_advantages",
    "group_advantages",
    "rloo_advantages",
]
