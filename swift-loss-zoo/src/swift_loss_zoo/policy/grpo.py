"""GRPO: the clipped surrogate averaged over each completion's tokens, then over completions."""

from __future__ import annotations

from swift_loss_zoo.policy._group_policy import GroupPolicyLoss


class GRPOLoss(GroupPolicyLoss):
    r"""Group Relative Policy Optimization (DeepSeekMath), sequence-mean normalisation.

    With :math:`\rho_{i,t} = \exp(\log\pi_\theta - \log\pi_\mathrm{old})` per completion token and one
    advantage :math:`A_i` per completion (group-normalised reward, see
    :func:`swift_loss_zoo.policy.group_advantages`),

    .. math::
        L_{i,t} = -\min\big(\rho_{i,t} A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\varepsilon_\mathrm{low},
                  1+\varepsilon_\mathrm{high}) A_i\big) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{N}\sum_i \frac{1}{|o_i|}\sum_t L_{i,t}

    with :math:`\mathrm{k3} = e^{x} - 1 - x`, :math:`x = \log\pi_\mathrm{ref} - \log\pi_\theta`.
    Unit: a **sequence** (a completion with at least one counted token); its value is the mean of
    its token losses; :math:`N` = ``num_items_in_batch`` (completions in the accumulated batch) or
    the local count. The 1/|o_i| weighting biases towards short correct / long wrong answers
    (the Dr. GRPO critique); ``dr_grpo``, ``bnpo`` and ``dapo`` change only this normalisation.

    On-policy (``old_per_token_logps`` absent) the ratio is exactly 1 and, with group-centred
    advantages, the loss **value** is 0 while its gradient is not (TRL issues #2703, #3452).

    Paper: Shao et al., DeepSeekMath, arXiv:2402.03300 (eq. 3, outcome supervision). Defaults as
    TRL ``GRPOConfig``: ``epsilon_low=0.2``, ``epsilon_high=0.2`` (TRL ``epsilon_high=None`` means
    ``epsilon``), ``beta=0.0`` (the paper used 0.04). Log-ratios are bounded at +-20 before ``exp``.

    ``delta`` (default ``None``): INTELLECT-2's two-sided clipping (arXiv:2505.07291, TRL ``delta``):
    the unclipped term uses :math:`\min(\rho, \delta)`, bounding the loss of tokens whose ratio is
    huge while their advantage is negative; must exceed ``1 + epsilon_high``.

    ``unbiased_kl`` (default ``False``; every GRPO-family loss has it): the KL term becomes
    :math:`\beta\,\rho_{i,t}\,\mathrm{k3}_{i,t}` with the ratio differentiable (DeepSeek-V3.2,
    arXiv:2512.02556; TRL's ``use_bias_correction_kl``, ``True`` by default in TRL). Same value
    on-policy, different gradient: :math:`+\beta\,\mathrm{k3}\,\nabla\log\pi_\theta`.

    Inputs: ``per_token_logps`` ``[B, T]`` (differentiable), ``old_per_token_logps`` ``[B, T]``
    (optional), ``ref_per_token_logps`` ``[B, T]`` (required when ``beta > 0``), ``advantages``
    ``[B]``, ``completion_mask`` ``[B, T]``. Metrics: ``ratio_mean``, ``clip_fraction_low``,
    ``clip_fraction_high``, ``clip_fraction``, ``kl`` (when a reference is given).

    .. code-block:: yaml

        training_args:
          loss_type: grpo
          loss_kwargs: {epsilon_low: 0.2, epsilon_high: 0.2, beta: 0.04}
    """

    name = "grpo"
    reference = "arXiv:2402.03300"
    reduction_unit = "sequence"
