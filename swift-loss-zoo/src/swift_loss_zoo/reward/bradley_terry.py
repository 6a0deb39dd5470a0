"""Bradley-Terry reward-model loss on chosen / rejected scalar rewards."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl
from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.losses import require_non_negative
from swift_zoo.ops import upcast


class BradleyTerryLoss(BaseLoss):
    r"""Pairwise Bradley-Terry loss for training a reward model (InstructGPT, arXiv:2203.02155).

    With the reward model's scalar outputs :math:`r_c, r_r` for the chosen and rejected completion of a
    pair, an optional per-pair margin :math:`m` (Llama 2, arXiv:2307.09288) and the centring coefficient
    :math:`c` (``center_rewards_coefficient``, Eisenstein et al., arXiv:2312.09244), the per-pair loss is

    .. math::
        \ell = -\log\sigma(r_c - r_r - m) + c\,(r_c + r_r)^2

    averaged over pairs: TRL's ``RewardTrainer.compute_loss`` (there the centring term is a separate
    mean over pairs, which is the same number).

    Defaults (TRL ``RewardConfig``): ``center_rewards_coefficient=None`` (off; 0.01 is the recommended
    value when on); ``0.0`` is the same as ``None``.

    Inputs: ``chosen_rewards``, ``rejected_rewards`` ``[B]`` (differentiable; e.g. the two halves of a
    sequence-classification head's ``[2B, 1]`` logits), ``margin`` ``[B]`` (optional). Metrics:
    ``accuracy`` (:math:`r_c > r_r`), ``margin`` (mean :math:`r_c - r_r`), ``chosen_reward``,
    ``rejected_reward``.

    .. code-block:: yaml

        training_args:
          loss_type: bradley_terry
          loss_kwargs: {center_rewards_coefficient: 0.01}
    """

    name = "bradley_terry"
    aliases = ("reward_model",)
    reference = "arXiv:2203.02155"
    equivalents = (
        trl(call("RewardConfig")),
        trl(call("RewardConfig", center_rewards_coefficient=0.01), {"center_rewards_coefficient": 0.01},
            settings="with a per-pair margin column as well"),
        ms_swift(flags(rlhf_type="rm"), settings="RewardTrainer.compute_loss (TRL's form)"),
    )
    reduction_unit = "pair"
    inputs = (
        TensorInput("chosen_rewards", ("B",), differentiable=True, doc="reward of the chosen completion"),
        TensorInput("rejected_rewards", ("B",), differentiable=True, doc="reward of the rejected completion"),
        TensorInput("margin", ("B",), optional=True, doc="required reward margin of the pair (Llama 2)"),
    )

    def __init__(self, *, center_rewards_coefficient: float | None = None) -> None:
        super().__init__()
        if center_rewards_coefficient is not None:
            center_rewards_coefficient = require_non_negative(
                self.name, "center_rewards_coefficient", center_rewards_coefficient)
        self.center_rewards_coefficient = center_rewards_coefficient

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        chosen = upcast(inputs["chosen_rewards"])
        rejected = upcast(inputs["rejected_rewards"]).to(chosen.dtype)
        difference = chosen - rejected
        if "margin" in inputs:
            difference = difference - upcast(inputs["margin"]).to(chosen.dtype)
        losses = -F.logsigmoid(difference)
        if self.center_rewards_coefficient:
            losses = losses + self.center_rewards_coefficient * (chosen + rejected) ** 2
        with torch.no_grad():
            self.record_metrics(
                accuracy=(chosen > rejected).to(chosen.dtype).mean(),
                margin=(chosen - rejected).mean(),
                chosen_reward=chosen.mean(),
                rejected_reward=rejected.mean(),
            )
        return UnitLosses(losses)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return torch.tensor(inputs["chosen_rewards"].shape[0], device=inputs["chosen_rewards"].device)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        chosen = 0.5 + torch.randn(batch_size, generator=generator, dtype=torch.float32)
        rejected = torch.randn(batch_size, generator=generator, dtype=torch.float32)
        margin = torch.rand(batch_size, generator=generator, dtype=torch.float32)
        outputs = {"chosen_rewards": chosen, "rejected_rewards": rejected, "margin": margin}
        return LossExample({key: value.to(device=device, dtype=dtype) for key, value in outputs.items()})
