"""Forward and reverse KL between teacher and student next-token distributions."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, trl
from swift_loss_zoo.distill._divergence import LogitDivergenceLoss


def kl_divergence(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum_v p_v (log p_v - log q_v)`` over the last dimension, from log-probabilities."""
    return (p_logp.exp() * (p_logp - q_logp)).sum(-1)


class ForwardKLLoss(LogitDivergenceLoss):
    r"""Forward KL, :math:`\mathrm{KL}(p_T \| p_S)`: classic (Hinton) distillation, mean-seeking.

    .. math::
        \ell_t = \sum_v p_T(v)\,\big(\log p_T(v) - \log p_S(v)\big),\qquad
        p = \mathrm{softmax}(z / \tau)

    summed over counted tokens and divided by their number :math:`N` (unit: a **token**; counted =
    label at :math:`t+1` not ``-100``, the cross-entropy shift). Equal to ``generalized_jsd`` with
    ``beta=0``. No :math:`\tau^2` factor.

    Paper: Hinton et al., arXiv:1503.02531; GKD (arXiv:2306.13649) names it the supervised-KD
    divergence. Defaults: ``temperature=1.0``, ``ignore_index=-100``. Inputs: ``student_logits``
    ``[B, T, V]`` (differentiable), ``teacher_logits`` ``[B, T, V]``, ``labels`` ``[B, T]``.
    Metric: ``top1_agreement``.

    .. code-block:: yaml

        training_args:
          loss_type: forward_kl
          loss_kwargs: {temperature: 1.0}
    """

    name = "forward_kl"
    reference = "arXiv:1503.02531"
    equivalents = (trl(call("GKDTrainer.generalized_jsd_loss", beta=0.0)),)

    def __init__(self, *, temperature: float = 1.0, ignore_index: int = -100) -> None:
        super().__init__()
        self.configure_temperature(temperature, ignore_index)

    def divergence(self, student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
        return kl_divergence(teacher_logp, student_logp)


class ReverseKLLoss(LogitDivergenceLoss):
    r"""Reverse KL, :math:`\mathrm{KL}(p_S \| p_T)`: mode-seeking distillation (MiniLLM, on-policy GKD).

    .. math::
        \ell_t = \sum_v p_S(v)\,\big(\log p_S(v) - \log p_T(v)\big),\qquad p = \mathrm{softmax}(z / \tau)

    summed over counted tokens and divided by their number (unit: a **token**). Equal to
    ``generalized_jsd`` with ``beta=1``. The exact sum over the vocabulary (not a sampled estimate).

    Paper: GKD, Agarwal et al., arXiv:2306.13649 (and MiniLLM, arXiv:2306.08543). Defaults:
    ``temperature=1.0``, ``ignore_index=-100``. Inputs and metric as :class:`ForwardKLLoss`.

    .. code-block:: yaml

        training_args:
          loss_type: reverse_kl
          loss_kwargs: {temperature: 1.0}
    """

    name = "reverse_kl"
    reference = "arXiv:2306.13649"
    equivalents = (trl(call("GKDTrainer.generalized_jsd_loss", beta=1.0)),)

    def __init__(self, *, temperature: float = 1.0, ignore_index: int = -100) -> None:
        super().__init__()
        self.configure_temperature(temperature, ignore_index)

    def divergence(self, student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
        return kl_divergence(student_logp, teacher_logp)
