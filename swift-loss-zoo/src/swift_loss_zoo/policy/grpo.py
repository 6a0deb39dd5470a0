"""GRPO: the clipped surrogate averaged over each completion's tokens, then over completions."""

from __future__ import annotations

from typing import Any

from swift_loss_zoo.policy._aggregation import LossAggMode
from swift_loss_zoo.policy._clipped import ClippedPolicyLoss
from swift_loss_zoo.policy._equivalents import liger_grpo, ms_swift_grpo, trl_grpo, verl_policy


class GRPOLoss(ClippedPolicyLoss):
    r"""Group Relative Policy Optimization (DeepSeekMath), sequence-mean normalisation.

    With :math:`\rho_{i,t} = \exp(\log\pi_\theta - \log\pi_\mathrm{old})` per completion token and an
    advantage :math:`A_i` per completion (group-normalised reward, see the ``grpo`` advantage
    estimator) or :math:`A_{i,t}` per token,

    .. math::
        L_{i,t} = -\min\big(\rho_{i,t} A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\mathrm{low},
                  1+\varepsilon_\mathrm{high}) A_i\big) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{N}\sum_i \frac{1}{|o_i|}\sum_t L_{i,t}

    with :math:`\mathrm{k3} = e^{x} - 1 - x`, :math:`x = \log\pi_\mathrm{ref} - \log\pi_\theta`.
    Unit: a **sequence** (a completion with at least one counted token; verl
    ``loss_agg_mode="seq-mean-token-mean"``); :math:`N` = ``num_items_in_batch`` (completions in the
    accumulated batch) or the local count. The 1/|o_i| weighting biases towards short correct / long
    wrong answers (the Dr. GRPO critique); ``dr_grpo``, ``bnpo`` and ``dapo`` change only this
    normalisation, and ``loss_agg_mode`` changes it here too.

    On-policy (``old_per_token_logps`` absent) the ratio is exactly 1 and, with group-centred
    advantages, the loss **value** is 0 while its gradient is not (TRL issues #2703, #3452).

    Paper: Shao et al., DeepSeekMath, arXiv:2402.03300 (eq. 3, outcome supervision). Defaults as
    TRL ``GRPOConfig``: ``epsilon_low=0.2``, ``epsilon_high=0.2`` (TRL ``epsilon_high=None`` means
    ``epsilon``), ``beta=0.0`` (the paper used 0.04). Log-ratios are bounded at +-20 before ``exp``.
    ``delta`` / ``dual_clip`` (off): two-sided / dual clipping, see
    :mod:`~swift_loss_zoo.policy._clipped`. The options every policy loss shares (KL estimator and
    bias correction, ``loss_agg_mode``, rollout correction, off-policy sequence mask, entropy bonus
    and top-entropy mask) are described in :mod:`~swift_loss_zoo.policy._group_policy`.

    ``use_bias_correction_kl`` (default ``False``; every policy loss has it): the KL term becomes
    :math:`\beta\,\rho_{i,t}\,\mathrm{k3}_{i,t}` with the ratio differentiable (DeepSeek-V3.2,
    arXiv:2512.02556; TRL's ``use_bias_correction_kl``, ``True`` by default in TRL). Same value
    on-policy, different gradient: :math:`+\beta\,\mathrm{k3}\,\nabla\log\pi_\theta`.

    Inputs: ``per_token_logps`` ``[B, T]`` (differentiable), ``old_per_token_logps`` ``[B, T]``
    (optional), ``ref_per_token_logps`` ``[B, T]`` (required when ``beta > 0``),
    ``rollout_per_token_logps`` ``[B, T]`` (required by ``rollout_correction``), ``advantages``
    ``[B]`` or ``[B, T]``, ``entropy`` ``[B, T]`` (required by the entropy options),
    ``completion_mask`` ``[B, T]``. Metrics: ``ratio_mean``, ``clip_fraction_low``,
    ``clip_fraction_high``, ``clip_fraction``, ``kl`` (when a reference is given), ``entropy``.

    .. code-block:: yaml

        training_args:
          loss_type: grpo
          loss_kwargs: {epsilon_low: 0.2, epsilon_high: 0.2, beta: 0.04}
    """

    name = "grpo"
    reference = "arXiv:2402.03300"
    equivalents = (
        trl_grpo("grpo", rows=True),
        verl_policy("vanilla", "seq-mean-token-mean", zoo_kwargs={"dual_clip": 3.0}, settings="clip_ratio_c = dual_clip (verl's vanilla loss always dual-clips, clip_ratio_c=3.0 by default)"),
        ms_swift_grpo("grpo", zoo_kwargs={"beta": 0.04}),
        liger_grpo("grpo", rows=True),
    )

    def __init__(self, *, loss_agg_mode: LossAggMode = "seq-mean-token-mean", **options: Any) -> None:
        super().__init__(loss_agg_mode=loss_agg_mode, **options)
