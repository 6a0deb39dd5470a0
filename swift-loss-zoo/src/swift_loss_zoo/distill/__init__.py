"""Logit distillation: forward / reverse KL, generalized JSD (GKD) and total variation distance."""

from swift_loss_zoo.distill.generalized_jsd import GeneralizedJSDLoss
from swift_loss_zoo.distill.kl import ForwardKLLoss, ReverseKLLoss, kl_divergence
from swift_loss_zoo.distill.topk import ForwardKLTopKLoss
from swift_loss_zoo.distill.tvd import TVDLoss

__all__ = [
    "ForwardKLLoss",
    "ForwardKLTopKLoss",
    "GeneralizedJSDLoss",
    "ReverseKLLoss",
    "TVDLoss",
    "kl_divergence",
]
