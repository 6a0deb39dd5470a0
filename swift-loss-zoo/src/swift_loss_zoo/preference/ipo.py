"""IPO: a squared loss on length-averaged log-ratio margins."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, dpo_family, flags, ms_swift, trl
from swift_loss_zoo.preference._inputs import paired_inputs, with_options
from swift_loss_zoo.preference._paired import FDivergencePairLoss, LogRatios


class IpoLoss(FDivergencePairLoss):
    r"""Identity Preference Optimization: regress the margin to :math:`1/(2\tau)`.

    .. math::
        \ell = \Big(\frac{c_l}{n_w} - \frac{r_l}{n_l} - \frac{1}{2\tau}\Big)^2

    with :math:`c_l, r_l` the summed chosen / rejected log-ratios, :math:`n_w, n_l` their token
    counts (clamped to >= 1) and :math:`\tau` = ``beta``; averaged over pairs. The length
    averaging is what TRL does (confirmed with the IPO authors; the paper writes the summed
    form): without it the squared loss grows with completion length.

    Paper: Azar et al., "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", arXiv:2310.12036 (Eq. 17). TRL ``loss_type="ipo"``.

    Options: ``f_divergence_type`` / ``f_alpha_divergence_coef`` / ``f_alpha_divergence_convention``,
    ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1`` (plays :math:`\tau`; target margin :math:`1/(2\tau) = 5` nats per token).

    Inputs: the four summed log-probs ``[B]`` plus ``chosen_lengths``, ``rejected_lengths`` ``[B]`` (int).

    .. code-block:: yaml

        training_args:
          loss_type: ipo
          loss_kwargs: {beta: 0.1}
    """

    name = "ipo"
    reference = "arXiv:2310.12036"
    equivalents = (
        *dpo_family("ipo", swift_flags={}),
        trl(call("DPOConfig", loss_type="ipo", f_divergence_type="js_divergence"),
            {"f_divergence_type": "js_divergence"}),
        ms_swift(flags(rlhf_type="dpo", loss_type="ipo", f_divergence_type="js_divergence"),
                 {"f_divergence_type": "js_divergence"},
                 differs="ms-swift applies the f-divergence to the length-averaged log-ratios; TRL 1.x and the zoo "
                         "average the f-scores of the summed log-ratios"),
    )
    inputs = with_options(paired_inputs(reference=True, lengths=True))

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        chosen, rejected = ratios.averaged_scores()
        return (chosen - rejected - 0.5 / self.beta).square()
