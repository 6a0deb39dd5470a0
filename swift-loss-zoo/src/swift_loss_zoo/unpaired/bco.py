"""BCO: binary classifier optimisation on unpaired desirable / undesirable completions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import trl
from swift_loss_zoo.preference._inputs import unpaired_inputs
from swift_loss_zoo.unpaired._unpaired import UnpairedLoss
from swift_zoo import LossExample, TensorInput, UnitLosses
from swift_zoo.losses import require_finite, require_in_range, require_positive


class BCOLoss(UnpairedLoss):
    r"""BCO (Jung et al. 2024, arXiv:2404.04656): a logistic classifier whose logit is the implicit reward.

    With the implicit reward :math:`\rho = \beta(S - R)` of each completion and a reward shift
    :math:`\delta`, the per-sample loss is

    .. math::
        \ell = \begin{cases} -\log\sigma(\rho - \delta) & \text{desirable} \\
                             -\log\sigma(-(\rho - \delta)) & \text{undesirable}\end{cases}

    averaged over samples (TRL ``BCOTrainer.bco_loss``). :math:`\delta` is, first match wins:

    1. the optional input ``reward_baseline`` (0-dim or ``[B]``, detached): the trainer's own estimate,
       e.g. a running mean all-reduced over ranks. With it the loss is stateless and splits exactly;
    2. the hyperparameter ``delta`` (a constant);
    3. otherwise a running mean of the detached rewards kept in buffers (``running_mean``,
       ``running_count``, saved in ``state_dict``) and, in training mode, updated with each call's batch
       **before** it is used, as TRL does: the cumulative mean of every reward seen (TRL's
       ``RunningMoments``) or, with ``delta_momentum = m``, the moving average
       :math:`\delta \leftarrow m\delta + (1-m)\bar\rho` (started at the first batch mean). This makes the
       loss depend on the micro-batch and on the history of calls (declared ``batch_dependent``); in eval
       mode the buffers are read, not updated. Unlike TRL, the buffers see only the local rank's rewards.

    Not implemented: the underlying-distribution-matching (UDM) density-ratio weights of undesirable
    samples (TRL's ``match_underlying_distribution``, which needs a prompt-embedding classifier); weight
    the per-sample losses upstream if needed.

    Defaults (TRL ``BCOConfig``): ``beta=0.1``; ``delta=None``, ``delta_momentum=None`` (cumulative mean).

    Inputs: ``policy_logps`` ``[B]`` (summed, differentiable), ``reference_logps`` ``[B]``,
    ``is_desirable`` ``[B]`` (bool), ``reward_baseline`` ``[]`` or ``[B]`` (optional). Metrics: ``delta``,
    ``chosen_reward``, ``rejected_reward`` (mean :math:`\rho` per class), ``count_chosen``,
    ``count_rejected``.

    .. code-block:: yaml

        training_args:
          loss_type: bco
          loss_kwargs: {beta: 0.1}
    """

    name = "bco"
    reference = "arXiv:2404.04656"
    equivalents = (
        trl("BCOTrainer, removed in TRL 1.x", differs="TRL 1.x removed BCOTrainer (PR #7136; TRL <= 0.29 has it in "
                                           "trl.experimental.bco); the pairwise form survives as DPOConfig(loss_type="
                                           "'bco_pair'), the zoo's bco_pair"),
    )
    batch_dependent = (
        "without reward_baseline or delta, the reward shift is a running mean updated from each "
        "micro-batch's rewards before use, so it depends on how the batch is split (and on earlier calls)"
    )
    baseline_key = "reward_baseline"
    inputs = (
        *unpaired_inputs(reference=True),
        TensorInput("reward_baseline", ("B",), optional=True,
                    doc="trainer-provided reward shift delta (0-dim or [B]); replaces the running mean"),
    )

    def __init__(self, *, beta: float = 0.1, delta: float | None = None, delta_momentum: float | None = None) -> None:
        super().__init__()
        self.beta = require_positive(self.name, "beta", beta)
        self.delta = None if delta is None else require_finite(self.name, "delta", delta)
        self.delta_momentum = None if delta_momentum is None else require_in_range(
            self.name, "delta_momentum", delta_momentum, 0.0, 1.0, high_inclusive=False)
        self.register_buffer("running_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("running_count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update_running_mean(self, rewards: torch.Tensor) -> None:
        """Fold a batch of detached rewards into the running mean (see the class docstring)."""
        if rewards.numel() == 0:
            return
        batch_mean = rewards.to(self.running_mean.dtype).mean()
        batch_count = float(rewards.numel())
        if self.delta_momentum is None or self.running_count.item() == 0:
            total = self.running_count + batch_count
            self.running_mean += (batch_mean - self.running_mean) * (batch_count / total)
        else:
            self.running_mean.mul_(self.delta_momentum).add_((1.0 - self.delta_momentum) * batch_mean)
        self.running_count += batch_count

    def reward_shift(self, inputs: dict[str, torch.Tensor], rewards: torch.Tensor) -> torch.Tensor:
        """The detached shift delta, per sample ([B]) or for the batch (0-dim)."""
        if "reward_baseline" in inputs:
            return inputs["reward_baseline"].detach().to(rewards.dtype)
        if self.delta is not None:
            return torch.tensor(self.delta, dtype=rewards.dtype, device=rewards.device)
        if self.training:
            self.update_running_mean(rewards.detach())
        return self.running_mean.detach().clone().to(device=rewards.device, dtype=rewards.dtype)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        rewards = self.beta * self.log_ratios(inputs)
        desirable = inputs["is_desirable"]
        delta = self.reward_shift(inputs, rewards)
        shifted = rewards - delta
        losses = -F.logsigmoid(torch.where(desirable, shifted, -shifted))
        self.record_unpaired_metrics(rewards, desirable, delta=delta.mean())
        return UnitLosses(losses)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        """A batch with a trainer-provided ``reward_baseline``: the stateless, exactly splittable path."""
        example = super().example_inputs(batch_size=batch_size, generator=generator, dtype=dtype, device=device)
        baseline = 0.1 * torch.randn((), generator=generator, dtype=torch.float32)
        example.model_outputs["reward_baseline"] = baseline.expand(batch_size).to(device=device, dtype=dtype)
        return example
