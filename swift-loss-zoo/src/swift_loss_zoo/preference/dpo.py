"""DPO (sigmoid loss) with conservative label smoothing, and its length-normalised form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import call, dpo_family, flags, ms_swift, trl
from swift_loss_zoo.preference._inputs import paired_inputs, with_options
from swift_loss_zoo.preference._paired import FDivergencePairLoss, LogRatios, smoothed_logistic
from swift_zoo.losses import require_in_range


class DpoLoss(FDivergencePairLoss):
    r"""Direct Preference Optimization: the logistic loss on the implicit reward margin.

    With summed completion log-probs, :math:`c_l = \log\pi(y_w) - \log\pi_{ref}(y_w)`,
    :math:`r_l = \log\pi(y_l) - \log\pi_{ref}(y_l)` and :math:`\Delta = c_l - r_l`, the per-pair loss is

    .. math::
        \ell = -(1-\varepsilon)\,\log\sigma(\beta\Delta) - \varepsilon\,\log\sigma(-\beta\Delta)

    (:math:`\varepsilon` = ``label_smoothing``: conservative DPO, cDPO, the probability that a
    label is flipped; :math:`\varepsilon = 0` is plain DPO), averaged over pairs
    (``reduction_unit="pair"``). Computed with ``logsigmoid``: finite for any finite
    :math:`\Delta` (at :math:`\beta\Delta = -10^4` the loss is :math:`10^4`, at :math:`+10^4` it is 0).

    Paper: Rafailov et al., arXiv:2305.18290. cDPO: Mitchell, "A note on DPO with noisy
    preferences" (2023). TRL ``DPOConfig(loss_type="sigmoid")`` (TRL <= 0.28 and ms-swift keep
    the smoothing; TRL 1.x moved it to ``robust``).

    **Options** of the whole DPO family (TRL 1.x's ``DPOConfig`` fields, so they are kwargs of each loss,
    not new names: TRL combines them with any ``loss_type``):

    * ``f_divergence_type`` (f-DPO, arXiv:2309.16240): :math:`\Delta` becomes :math:`s(c_l) - s(r_l)`
      with :math:`s(l) = 1 - e^{-l}` (``forward_kl``), :math:`\log 2 + \log\sigma(l)` (``js_divergence``)
      or :math:`(e^{(\alpha-1)l} - 1)/(\alpha - 1)` (``alpha_divergence``, :math:`\alpha` =
      ``f_alpha_divergence_coef``; ``f_alpha_divergence_convention="trl_legacy"`` reads it as TRL <= 0.28's
      and ms-swift's :math:`a = 1 - \alpha`); exponents clamped at 80;
    * ``ld_alpha`` (LD-DPO, arXiv:2409.06411): every summed log-prob, policy and reference, becomes
      :math:`\log\pi(y) - (1 - \alpha_{LD})\,\mathrm{tail}(y)`, the tail being the tokens past the pair's
      common length (inputs ``*_tail_logps``, from :func:`~swift_loss_zoo.preference.ld_tail_logps`);
    * ``use_weighting`` (WPO, arXiv:2406.11827): the pair's loss times the detached
      :math:`w(y_w)\,w(y_l)`, :math:`w(y) = \exp(\frac1n\sum_t \log\pi(y_t) - \log\sum_v\pi(v)^2)`
      (inputs ``policy_*_log_sum_sq_probs`` and the lengths, from
      :func:`~swift_loss_zoo.preference.sequence_log_sum_sq_probs`).

    Defaults: ``beta=0.1``, ``label_smoothing=0.0`` (in ``[0, 0.5]``), ``f_divergence_type="reverse_kl"``,
    ``f_alpha_divergence_coef=0.5``, ``f_alpha_divergence_convention="trl"``, ``ld_alpha=None``,
    ``use_weighting=False``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
    ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]``, all summed over the
    completion tokens; the options' inputs when they are on.

    Metrics: ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``,
    ``logps/chosen``, ``logps/rejected`` (and ``weights/mean`` with WPO).

    .. code-block:: yaml

        training_args:
          loss_type: dpo
          loss_kwargs: {beta: 0.1, label_smoothing: 0.0, f_divergence_type: alpha_divergence,
                        f_alpha_divergence_coef: 0.5, ld_alpha: 0.5, use_weighting: false}
    """

    name = "dpo"
    aliases = ("cdpo",)
    reference = "arXiv:2305.18290"
    equivalents = (
        *dpo_family("sigmoid", swift_flags={}, liger_kwargs={}),
        trl(call("DPOConfig", loss_type="sigmoid", f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.3),
            {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3}),
        trl(call("DPOConfig", loss_type="sigmoid", f_divergence_type="js_divergence"),
            {"f_divergence_type": "js_divergence"}),
        trl(call("DPOConfig", loss_type="sigmoid", f_divergence_type="forward_kl"),
            {"f_divergence_type": "forward_kl"}),
        trl(call("DPOConfig", loss_type="sigmoid", ld_alpha=0.5), {"ld_alpha": 0.5},
            settings="the zoo reads the tail sums (ld_tail_logps) of policy and reference"),
        trl(call("DPOConfig", loss_type="sigmoid", use_weighting=True), {"use_weighting": True},
            settings="the zoo reads the summed log sum_v p_v^2 (sequence_log_sum_sq_probs)"),
        trl(call("DPOConfig", loss_type="sigmoid", label_smoothing=0.1), {"label_smoothing": 0.1},
            differs="TRL 1.x ignores label_smoothing for 'sigmoid' (it moved cDPO smoothing to 'robust'); the zoo's "
                    "dpo keeps the cDPO smoothing of TRL <= 0.28 and ms-swift"),
        ms_swift(flags(rlhf_type="dpo", loss_type="sigmoid", label_smoothing=0.1), {"label_smoothing": 0.1},
                 settings="cDPO smoothing"),
        ms_swift(flags(rlhf_type="dpo", loss_type="sigmoid", f_divergence_type="alpha_divergence",
                       f_alpha_divergence_coef=0.3),
                 {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3,
                  "f_alpha_divergence_convention": "trl_legacy"},
                 settings="ms-swift's coefficient a is TRL 1.x's 1 - alpha"),
        ms_swift(flags(rlhf_type="dpo", loss_type="sigmoid", f_divergence_type="js_divergence"),
                 {"f_divergence_type": "js_divergence"}),
        ms_swift(flags(rlhf_type="dpo", loss_type="sigmoid", f_divergence_type="forward_kl"),
                 {"f_divergence_type": "forward_kl"},
                 differs="ms-swift's dpo_loss implements only alpha_divergence and js_divergence: forward_kl "
                         "silently trains the reverse KL (plain DPO)"),
        ms_swift(flags(rlhf_type="dpo", loss_type="sigmoid", ld_alpha=0.5), {"ld_alpha": 0.5},
                 differs="ms-swift (as TRL <= 0.28) down-weights only the policy's tail log-probs; TRL 1.x and the "
                         "zoo also the reference's"),
    )

    def __init__(
        self,
        *,
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        ld_alpha: float | None = None,
        use_weighting: bool = False,
        f_divergence_type: str = "reverse_kl",
        f_alpha_divergence_coef: float = 0.5,
        f_alpha_divergence_convention: str = "trl",
    ) -> None:
        super().__init__(beta=beta, ld_alpha=ld_alpha, use_weighting=use_weighting, f_divergence_type=f_divergence_type,
                         f_alpha_divergence_coef=f_alpha_divergence_coef,
                         f_alpha_divergence_convention=f_alpha_divergence_convention)
        self.label_smoothing = require_in_range(self.name, "label_smoothing", label_smoothing, 0.0, 0.5)

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        return smoothed_logistic(self.beta * ratios.score_margin, self.label_smoothing)


class DpoNormLoss(FDivergencePairLoss):
    r"""Length-normalised DPO: DPO on per-token average log-ratios.

    .. math::
        \ell = -\log\sigma\!\Big(\beta\,\Big(\frac{c_l}{n_w} - \frac{r_l}{n_l}\Big)\Big)

    with :math:`c_l, r_l` the summed chosen / rejected log-ratios (policy minus reference) and
    :math:`n_w, n_l` their scored-token counts (clamped to >= 1); averaged over pairs. Removes
    DPO's bias towards long completions.

    Paper: Tülu 3 (Lambert et al.), arXiv:2411.15124, length-normalised DPO. TRL 1.x
    ``DPOConfig(loss_type="sigmoid_norm")``.

    Options: ``f_divergence_type`` / ``f_alpha_divergence_coef`` / ``f_alpha_divergence_convention``,
    ``ld_alpha``, ``use_weighting``, as :class:`~swift_loss_zoo.preference.DpoLoss` (defaults: off).

    Defaults: ``beta=0.1`` (Tülu 3 used a much larger ``beta``, e.g. 5, since per-token
    log-ratios are small).

    Inputs: the four summed log-probs ``[B]`` plus ``chosen_lengths``, ``rejected_lengths`` ``[B]``
    (int token counts).

    .. code-block:: yaml

        training_args:
          loss_type: dpo_norm
          loss_kwargs: {beta: 5.0}
    """

    name = "dpo_norm"
    aliases = ("sigmoid_norm",)
    reference = "arXiv:2411.15124"
    equivalents = (
        *dpo_family("sigmoid_norm"),
        trl(call("DPOConfig", loss_type="sigmoid_norm", f_divergence_type="alpha_divergence",
                 f_alpha_divergence_coef=0.3),
            {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3}),
    )
    inputs = with_options(paired_inputs(reference=True, lengths=True))

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        chosen, rejected = ratios.averaged_scores()
        return -F.logsigmoid(self.beta * (chosen - rejected))
