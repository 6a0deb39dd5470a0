"""Logit distillation losses between a student and a teacher over the same tokens."""

from swift_zoo import LossSpec

_MODULE = "swift_loss_zoo.distill"

SPECS = [
    LossSpec("forward_kl", f"{_MODULE}.kl:ForwardKLLoss",
             summary="KL(teacher || student) per counted token, over the full vocabulary",
             reference="arXiv:1503.02531"),
    LossSpec("forward_kl_topk", f"{_MODULE}.topk:ForwardKLTopKLoss",
             summary="KL(teacher || student) on the teacher's top-k tokens: plain, renormalised or with a tail bucket",
             reference="arXiv:2306.13649"),
    LossSpec("reverse_kl", f"{_MODULE}.kl:ReverseKLLoss",
             summary="KL(student || teacher) per counted token, over the full vocabulary",
             reference="arXiv:2306.13649"),
    LossSpec("generalized_jsd", f"{_MODULE}.generalized_jsd:GeneralizedJSDLoss", aliases=("gkd", "jsd"),
             summary="GKD generalized JSD (beta=0 forward KL, beta=1 reverse KL, as TRL)",
             reference="arXiv:2306.13649"),
    LossSpec("tvd", f"{_MODULE}.tvd:TVDLoss", aliases=("total_variation",),
             summary="Total variation distance 0.5 * sum |p_student - p_teacher| per counted token",
             reference="arXiv:2307.15190"),
]
