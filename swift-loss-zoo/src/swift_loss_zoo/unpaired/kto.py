"""KTO: Kahneman-Tversky optimisation from unpaired desirable / undesirable completions."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl
from swift_loss_zoo.preference._inputs import unpaired_inputs
from swift_loss_zoo.unpaired._unpaired import WeightedUnpairedLoss
from swift_zoo import LossInputError, TensorInput, UnitLosses
from swift_zoo.ops import upcast

_KL_KEYS = ("policy_kl_logps", "reference_kl_logps")


class KTOLoss(WeightedUnpairedLoss):
    r"""KTO (Ethayarajh et al. 2024, arXiv:2402.01306): a prospect-theoretic loss on unpaired feedback.

    With the log-ratio :math:`r = S - R` (policy minus reference summed log-probs) of each completion
    and the reference point

    .. math::
        z_0 = \operatorname{sg}\Big(\max\big(0,\ \operatorname{mean}_b(S^{KL}_b - R^{KL}_b)\big)\Big)

    estimated from *mismatched* (prompt, completion) pairs (TRL pairs each prompt with the next
    example's completion), the per-sample loss is

    .. math::
        \ell = \begin{cases} w_d\,\big(1 - \sigma(\beta(r - z_0))\big) & \text{desirable} \\
                             w_u\,\big(1 - \sigma(\beta(z_0 - r))\big) & \text{undesirable}\end{cases}

    averaged over samples (TRL ``KTOTrainer``, ``loss_type="kto"``; the paper's eq. 7).

    **The reference point and micro-batches.** Without ``kl_baseline`` the mean above runs over the
    local micro-batch, so splitting a batch changes :math:`z_0` (declared ``batch_dependent``; TRL
    averages it over processes but not over accumulation steps). A trainer that wants the exact
    full-batch loss passes ``kl_baseline``: its own detached estimate (e.g. all-reduced over ranks and
    accumulation steps), as a 0-dim tensor or ``[B]``; it is used as given (clamped at 0, detached),
    and the mismatched log-probs may then be left out.

    Defaults (TRL ``KTOConfig``): ``beta=0.1``, ``desirable_weight=1.0``, ``undesirable_weight=1.0``.
    TRL recommends :math:`w_d n_d / (w_u n_u) \in [1, 4/3]`.

    Inputs: ``policy_logps`` ``[B]`` (summed, differentiable), ``reference_logps`` ``[B]``,
    ``is_desirable`` ``[B]`` (bool), ``policy_kl_logps``, ``reference_kl_logps`` ``[B]`` (mismatched
    pairs; optional when ``kl_baseline`` is given), ``kl_baseline`` ``[]`` or ``[B]`` (optional).
    Metrics: ``kl`` (:math:`z_0`), ``chosen_reward``, ``rejected_reward`` (mean :math:`\beta r` per class),
    ``count_chosen``, ``count_rejected``.

    .. code-block:: yaml

        training_args:
          loss_type: kto
          loss_kwargs: {beta: 0.1, desirable_weight: 1.0, undesirable_weight: 1.0}
    """

    name = "kto"
    reference = "arXiv:2402.01306"
    equivalents = (
        trl(call("KTOConfig", loss_type="kto")),
        trl(call("KTOConfig", loss_type="kto", desirable_weight=1.3, undesirable_weight=0.7),
            {"desirable_weight": 1.3, "undesirable_weight": 0.7}),
        ms_swift(flags(rlhf_type="kto"), settings="TRL 0.29's KTOTrainer"),
    )
    batch_dependent = (
        "without the kl_baseline input, the KL reference point z0 is the mean over the micro-batch's "
        "mismatched completions; pass kl_baseline (the trainer's all-reduced estimate) for exact splitting"
    )
    baseline_key = "kl_baseline"
    inputs = (
        *unpaired_inputs(reference=True, kl_optional=True),
        TensorInput("kl_baseline", ("B",), optional=True,
                    doc="trainer-provided KL reference point z0 (0-dim or [B]); replaces the batch estimate"),
    )

    def validate(self, model_outputs, labels=None) -> dict[str, torch.Tensor]:
        inputs = super().validate(model_outputs, labels)
        if "kl_baseline" not in inputs and not all(key in inputs for key in _KL_KEYS):
            missing = ", ".join(key for key in _KL_KEYS if key not in inputs)
            message = (
                f"{self.name}: expected either model_outputs['kl_baseline'] or both policy_kl_logps and "
                f"reference_kl_logps [B] (mismatched completions) to estimate the KL reference point; missing {missing}"
            )
            raise LossInputError(message)
        return inputs

    def reference_point(self, inputs: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        """The detached KL reference point z0, per sample ([B]) or for the batch (0-dim)."""
        with torch.no_grad():
            if "kl_baseline" in inputs:
                baseline = inputs["kl_baseline"].to(dtype)
            else:
                baseline = (upcast(inputs["policy_kl_logps"]).to(dtype)
                            - upcast(inputs["reference_kl_logps"]).to(dtype)).mean()
            return torch.clamp(baseline, min=0.0)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logratio = self.log_ratios(inputs)
        desirable = inputs["is_desirable"]
        z0 = self.reference_point(inputs, logratio.dtype)
        signed = torch.where(desirable, logratio - z0, z0 - logratio)
        # = 1 - sigmoid(beta * signed), accurate in the tail
        losses = self.class_weights(desirable, logratio) * torch.sigmoid(-self.beta * signed)
        self.record_unpaired_metrics(self.beta * logratio, desirable, kl=z0.mean())
        return UnitLosses(losses)
