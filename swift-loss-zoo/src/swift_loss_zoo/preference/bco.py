"""BCO (pairwise): binary classification of chosen vs rejected implicit rewards around a baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import dpo_family
from swift_loss_zoo.preference._paired import LogRatios, PairedReferenceLoss
from swift_zoo.losses import require_finite


class BcoPairLoss(PairedReferenceLoss):
    r"""Binary classifier optimization on paired data, with an explicit reward baseline δ.

    With the implicit rewards :math:`r_w = \beta c_l`, :math:`r_l = \beta r_l'` (summed log-ratios),

    .. math::
        \ell = -\log\sigma(r_w - \delta) - \log\sigma(-(r_l - \delta))

    averaged over pairs: chosen rewards are classified above δ, rejected ones below.

    **The baseline δ is a hyperparameter** (``delta``, default 0: the TRL 1.x form). TRL <= 0.28
    and ms-swift instead keep δ as a running mean of the detached batch rewards, updated inside
    the loss before use; that makes the loss stateful, so two identical calls differ and a
    micro-batch split changes the value. Here the loss is a pure function of its inputs; to
    reproduce the running baseline, update the attribute between optimizer steps from the
    recorded metric ``rewards/mean`` (the mean of :math:`\beta\,[c_l; r_l]` over the local pairs),
    e.g. ``loss.delta = 0.99 * loss.delta + 0.01 * loss.metrics["rewards/mean"].item()``.

    Paper: Jung et al., "Binary Classifier Optimization for Large Language Model Alignment",
    arXiv:2404.04656. TRL ``loss_type="bco_pair"``.

    Options: ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1``, ``delta=0.0`` (any finite float).

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (summed log-probs).

    Metrics: the DPO rewards metrics and ``rewards/mean``.

    .. code-block:: yaml

        training_args:
          loss_type: bco_pair
          loss_kwargs: {beta: 0.1, delta: 0.0}
    """

    name = "bco_pair"
    reference = "arXiv:2404.04656"
    equivalents = dpo_family(
        "bco_pair", swift_flags={}, liger_kwargs={},
        swift_differs="ms-swift (as TRL <= 0.28) subtracts a running mean delta of the detached rewards, updated "
                      "inside the loss before use; the zoo's delta is a fixed hyperparameter (0: TRL 1.x)")

    def __init__(
        self,
        *,
        beta: float = 0.1,
        delta: float = 0.0,
        ld_alpha: float | None = None,
        use_weighting: bool = False,
    ) -> None:
        super().__init__(beta=beta, ld_alpha=ld_alpha, use_weighting=use_weighting)
        self.delta = require_finite(self.name, "delta", delta)

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        chosen = self.beta * ratios.chosen
        rejected = self.beta * ratios.rejected
        with torch.no_grad():
            self.record_metrics(**{"rewards/mean": torch.cat([chosen, rejected]).mean()})
        return -F.logsigmoid(chosen - self.delta) - F.logsigmoid(self.delta - rejected)
