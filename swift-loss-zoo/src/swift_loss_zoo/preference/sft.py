"""The SFT term of the DPO family: minus the mean log-prob of the chosen completions' tokens."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl
from swift_loss_zoo.preference._inputs import paired_example
from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import upcast


class SftLoss(BaseLoss):
    r"""The NLL of the chosen completions, one token mean over the batch (TRL's DPO ``loss_type="sft"``).

    From the per-sequence currency -- summed chosen log-probs :math:`S_b` and token counts :math:`n_b`:

    .. math::
        L = -\frac{\sum_b S_b}{N}, \qquad N = \sum_b n_b

    i.e. the mean over every scored chosen token of :math:`-\log\pi(y_t)`, with ``num_items_in_batch``
    (the token count of the whole accumulated batch) as :math:`N` when given. Unit: a **token**. It is
    expressed through the one normalisation rule without per-token inputs: each pair contributes
    :math:`n_b` units whose losses are :math:`-S_b/n_b` (their sum is :math:`-S_b`), so ``count_units``
    is :math:`\sum_b n_b` and micro-batch splitting is exact.

    Registered as its own name (not an option of ``dpo``) because TRL lists it beside ``sigmoid`` and
    ``bco_pair`` in ``DPOConfig.loss_type`` and weights it with ``loss_weights``: TRL's MPO,
    ``loss_type=["sigmoid", "bco_pair", "sft"]``, ``loss_weights=[0.8, 0.2, 1.0]``, is

    .. code-block:: yaml

        training_args:
          loss_type: weighted_sum
          loss_kwargs:
            losses:
              - {type: dpo, weight: 0.8}
              - {type: bco_pair, weight: 0.2}
              - {type: sft, weight: 1.0}

    (each term normalised by its own unit: pairs for the first two, tokens here -- as TRL does). With
    TRL's ``use_weighting=True`` the sft term is also multiplied, by the batch mean of the WPO pair weights;
    ``sft`` takes no weighting, so only the preference terms of such a mix match TRL. It
    reads neither the reference nor the rejected completion. ms-swift's ``--loss_type sft`` (and its
    ``rpo_alpha`` NLL) is the same token mean. TRL <= 0.28's classic ``sft`` used ``F.cross_entropy`` with
    masked labels set to 0, which also ignores real occurrences of token id 0 (see ``equivalents``).

    Paper: MPO, Wang et al., "Enhancing the Reasoning Ability of Multimodal Large Language Models via
    Mixed Preference Optimization", arXiv:2411.10442. Defaults: none (no hyperparameters).

    Inputs: ``policy_chosen_logps`` ``[B]`` (summed over the chosen completion, differentiable),
    ``chosen_lengths`` ``[B]`` (int token counts). Metric: ``nll`` (the loss value before
    ``num_items_in_batch``, i.e. the local token mean).

    .. code-block:: yaml

        training_args:
          loss_type: sft
    """

    name = "sft"
    reference = "arXiv:2411.10442"
    equivalents = (
        trl(call("DPOConfig", loss_type="sft")),
        ms_swift(flags(rlhf_type="dpo", loss_type="sft"),
                 settings="the nll_loss of DPOTrainer.concatenated_forward (chosen completion tokens)"),
    )
    reduction_unit = "token"
    inputs = (
        TensorInput("policy_chosen_logps", ("B",), differentiable=True, doc="summed log p(chosen) under the policy"),
        TensorInput("chosen_lengths", ("B",), dtype="int", doc="scored tokens of chosen"),
    )

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        summed = upcast(inputs["policy_chosen_logps"])
        lengths = inputs["chosen_lengths"].to(summed.device).clamp(min=0)
        width = max(int(lengths.max()), 1) if lengths.numel() else 1
        positions = torch.arange(width, device=summed.device)
        mask = positions[None, :] < lengths[:, None]
        per_token = -summed / lengths.to(summed.dtype).clamp(min=1.0)
        losses = per_token[:, None].expand(-1, width)
        with torch.no_grad():
            self.record_metrics(nll=-summed.sum() / lengths.sum().clamp(min=1).to(summed.dtype))
        return UnitLosses(losses, mask)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        return self.validate(model_outputs, labels)["chosen_lengths"].clamp(min=0).sum()

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return paired_example(cls.inputs, batch_size=batch_size, generator=generator, dtype=dtype, device=device)
