"""Advantage estimators, registered with swift zoo (``advantage_type``), each a ``BaseAdvantage``."""

from swift_loss_zoo.advantages.gae import GAEAdvantage
from swift_loss_zoo.advantages.gdpo import GDPOAdvantage
from swift_loss_zoo.advantages.grpo import DrGRPOAdvantage, GRPOAdvantage
from swift_loss_zoo.advantages.grpo_passk import GRPOPassKAdvantage
from swift_loss_zoo.advantages.opo import OPOAdvantage
from swift_loss_zoo.advantages.reinforce_plus_plus import ReinforcePlusPlusAdvantage
from swift_loss_zoo.advantages.reinforce_plus_plus_baseline import ReinforcePlusPlusBaselineAdvantage
from swift_loss_zoo.advantages.remax import ReMaxAdvantage
from swift_loss_zoo.advantages.rloo import RLOOAdvantage

__all__ = [
    "DrGRPOAdvantage",
    "GAEAdvantage",
    "GDPOAdvantage",
    "GRPOAdvantage",
    "GRPOPassKAdvantage",
    "OPOAdvantage",
    "RLOOAdvantage",
    "ReMaxAdvantage",
    "ReinforcePlusPlusAdvantage",
    "ReinforcePlusPlusBaselineAdvantage",
]
