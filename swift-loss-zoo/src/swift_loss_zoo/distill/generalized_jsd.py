"""The generalized Jensen-Shannon divergence of GKD, with TRL's endpoint convention."""

from __future__ import annotations

import math

import torch

from swift_loss_zoo._equivalents import call, flags, liger, ms_swift, trl
from swift_loss_zoo.distill._divergence import LogitDivergenceLoss
from swift_loss_zoo.distill.kl import kl_divergence
from swift_zoo.losses import require_in_range


class GeneralizedJSDLoss(LogitDivergenceLoss):
    r"""Generalized JSD between teacher :math:`p_T` and student :math:`p_S` (GKD).

    For :math:`0 < \beta < 1`, with the mixture :math:`M = \beta\,p_T + (1-\beta)\,p_S` computed in
    log space (:math:`\log M = \mathrm{logsumexp}(\log p_T + \log\beta,\ \log p_S + \log(1-\beta))`):

    .. math::
        \ell_t = \beta\,\mathrm{KL}(p_T \| M) + (1-\beta)\,\mathrm{KL}(p_S \| M)

    and at the endpoints, **TRL's convention**: ``beta=0`` gives the forward KL
    :math:`\mathrm{KL}(p_T \| p_S)` (= ``forward_kl``), ``beta=1`` the reverse KL
    :math:`\mathrm{KL}(p_S \| p_T)` (= ``reverse_kl``). The general formula tends to 0 at both ends,
    so the loss is **discontinuous** at :math:`\beta \in \{0, 1\}` (as in TRL and ms-swift); for
    :math:`0 < \beta < 1` it is bounded by :math:`-\beta\log\beta - (1-\beta)\log(1-\beta) \le \log 2`.
    ``beta=0.5`` is the symmetric JSD. No :math:`\tau^2` factor.

    ``reduction`` (see :mod:`swift_loss_zoo.distill._divergence`): ``"token_mean"`` (default; unit
    **token**: summed over counted tokens, divided by their number -- TRL's ``"batchmean"`` with labels,
    ms-swift's GKD), ``"batchmean"`` (unit **sequence**: the sum divided by the number of rows, as
    ``torch.nn.KLDivLoss`` and TRL without labels) or ``"sum"`` (unit **batch**: the plain sum per
    micro-batch). ``num_items_in_batch`` counts that unit: tokens, rows, or micro-batches.

    Paper: Agarwal et al., GKD, arXiv:2306.13649 (eq. 1, with P = teacher, Q = student); TRL
    ``GKDTrainer.generalized_jsd_loss``. Defaults: ``beta=0.5``, ``temperature=1.0``,
    ``ignore_index=-100``, ``reduction="token_mean"``. Inputs and metric as :class:`ForwardKLLoss`.

    .. code-block:: yaml

        training_args:
          loss_type: generalized_jsd
          loss_kwargs: {beta: 0.5, temperature: 1.0, reduction: token_mean}
    """

    name = "generalized_jsd"
    aliases = ("gkd", "jsd")
    reference = "arXiv:2306.13649"
    equivalents = (
        trl(call("GKDTrainer.generalized_jsd_loss", beta=0.5), settings="labels given: 'batchmean' is the token mean"),
        trl(call("GKDTrainer.generalized_jsd_loss", beta=0.3, temperature=2.0),
            {"beta": 0.3, "temperature": 2.0}),
        trl(call("GKDTrainer.generalized_jsd_loss", beta=0.5, reduction="sum"), {"reduction": "sum"}),
        ms_swift(flags(rlhf_type="gkd", beta=0.5), {"temperature": 0.9},
                 settings="gkd_loss: the summed JSD over the local valid tokens, divided by their count; ms-swift's "
                          "--temperature (default 0.9, also the sampling temperature) softens both distributions"),
        liger(call("LigerFusedLinearJSDLoss", weight_hard_loss=0.0, weight_soft_loss=1.0, beta=0.5, temperature=2.0),
              {"temperature": 2.0}, settings="the soft loss over the valid tokens of the batch"),
    )

    def __init__(self, *, beta: float = 0.5, temperature: float = 1.0, ignore_index: int = -100,
                 reduction: str = "token_mean") -> None:
        super().__init__()
        self.beta = require_in_range(self.name, "beta", beta, 0.0, 1.0)
        self.configure_temperature(temperature, ignore_index)
        self.configure_reduction(reduction)

    def divergence(self, student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
        if self.beta == 0.0:
            return kl_divergence(teacher_logp, student_logp)
        if self.beta == 1.0:
            return kl_divergence(student_logp, teacher_logp)
        mixture = torch.logsumexp(
            torch.stack([teacher_logp + math.log(self.beta), student_logp + math.log1p(-self.beta)]), dim=0)
        return (self.beta * kl_divergence(teacher_logp, mixture)
                + (1.0 - self.beta) * kl_divergence(student_logp, mixture))
