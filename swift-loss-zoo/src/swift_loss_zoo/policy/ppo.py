"""PPO: clipped policy surrogate + clipped value loss - entropy bonus, per completion token."""

from __future__ import annotations

from typing import Any

import torch

from swift_loss_zoo.policy._clipped import ClippedPolicyLoss
from swift_loss_zoo.policy._equivalents import verl_policy
from swift_loss_zoo.policy._group_policy import PolicyBatch
from swift_loss_zoo.policy._inputs import ppo_example, ppo_inputs
from swift_zoo import LossExample
from swift_zoo.losses import require_non_negative, require_positive
from swift_zoo.ops import masked_mean


class PPOLoss(ClippedPolicyLoss):
    r"""Proximal Policy Optimization with a value head (the RLHF form of TRL's ``PPOTrainer``).

    Per completion token, with :math:`\rho = \exp(\log\pi_\theta - \log\pi_\mathrm{old})`, advantage
    :math:`A`, return :math:`G`, value :math:`V`, rollout value :math:`V_\mathrm{old}` and entropy :math:`H`:

    .. math::
        \ell^\mathrm{pg} &= \max\big(-A\rho,\
            -A\,\mathrm{clip}(\rho, 1-\varepsilon_\mathrm{low}, 1+\varepsilon_\mathrm{high})\big)\\
        \ell^\mathrm{vf} &= \tfrac12\max\big((V - G)^2,\
            (\mathrm{clip}(V, V_\mathrm{old}-c_v, V_\mathrm{old}+c_v) - G)^2\big)\\
        L_t &= \ell^\mathrm{pg}_t + c_\mathrm{vf}\,\ell^\mathrm{vf}_t - c_H\,H_t

    and :math:`\mathcal{L} = \sum_t L_t / N` over completion tokens (unit: a **token**, verl
    ``token-mean``; ``loss_agg_mode`` changes it). With one mask for all three terms this equals
    TRL's ``pg_loss + vf_coef * vf_loss`` (each a masked token mean) minus the entropy bonus. Without
    ``old_values`` the value loss is unclipped (:math:`\tfrac12 (V-G)^2`); without
    ``old_per_token_logps`` the step is on-policy (ratio 1). Advantages and returns come from the
    ``gae`` advantage estimator (whitened advantages, returns = raw GAE + values); the
    KL-to-reference penalty lives in the rewards there (or in ``beta`` here). ``dual_clip=3`` is
    verl's dual-clip PPO (arXiv:1912.09729). The rollout weight and the masks act on
    :math:`\ell^\mathrm{pg}` only, never on the value loss.

    Paper: Schulman et al., arXiv:1707.06347 (clipped surrogate, value loss, entropy bonus); value
    clipping and defaults from TRL ``PPOConfig`` (``trl/experimental/ppo``): ``epsilon_low=
    epsilon_high=0.2`` (``cliprange``), ``cliprange_value=0.2``, ``vf_coef=0.1``; ``entropy_coef=0.0``;
    the shared options as :class:`~swift_loss_zoo.policy.GRPOLoss`.

    Inputs: ``per_token_logps`` ``[B, T]`` (differentiable), ``old_per_token_logps`` (optional),
    ``advantages``, ``returns``, ``values`` (differentiable), ``old_values`` (optional), ``entropy``
    (differentiable; required when ``entropy_coef > 0``), ``completion_mask``, all ``[B, T]``.
    Metrics: ``policy_loss``, ``value_loss``, ``entropy``, ``ratio_mean``, ``approx_kl``
    (:math:`\tfrac12(\log\rho)^2`), ``clip_fraction(_low/_high)``, ``value_clip_fraction``.

    .. code-block:: yaml

        training_args:
          loss_type: ppo
          loss_kwargs: {epsilon_low: 0.2, epsilon_high: 0.2, cliprange_value: 0.2, vf_coef: 0.1}
    """

    name = "ppo"
    reference = "arXiv:1707.06347"
    equivalents = (
        verl_policy("vanilla", "token-mean", zoo_kwargs={"dual_clip": 3.0},
                    settings="plus vf_coef times verl's critic loss compute_value_loss(cliprange_value=cliprange_value) "
                    "(verl trains the critic with its own optimizer); clip_ratio_c = dual_clip"),
    )
    inputs = ppo_inputs()

    def __init__(self, *, cliprange_value: float = 0.2, vf_coef: float = 0.1, **options: Any) -> None:
        super().__init__(**options)
        self.cliprange_value = require_positive(self.name, "cliprange_value", cliprange_value)
        self.vf_coef = require_non_negative(self.name, "vf_coef", vf_coef)

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        policy = super().per_token_losses(batch)
        with torch.no_grad():
            self.record_metrics(policy_loss=masked_mean(policy, batch.mask),
                                approx_kl=masked_mean(0.5 * batch.log_ratio.square(), batch.mask))
        return policy

    def extra_token_losses(self, batch: PolicyBatch, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``vf_coef`` times the (clipped) value loss per token."""
        mask = batch.mask
        dtype = batch.logps.dtype
        zero = torch.zeros((), dtype=dtype, device=mask.device)

        def kept(key: str) -> torch.Tensor | None:
            value = inputs.get(key)
            return None if value is None else torch.where(mask, value.to(dtype), zero)

        values, returns, old_values = kept("values"), kept("returns"), kept("old_values")
        value = (values - returns).square()
        if old_values is not None:
            clipped_values = old_values + torch.clamp(values - old_values, -self.cliprange_value, self.cliprange_value)
            clipped_value = (clipped_values - returns).square()
            self.record_metrics(value_clip_fraction=masked_mean((clipped_value > value).to(dtype), mask))
            value = torch.maximum(value, clipped_value)
        value = 0.5 * value
        self.record_metrics(value_loss=masked_mean(value.detach(), mask))
        return self.vf_coef * value

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return ppo_example(batch_size=batch_size, generator=generator, dtype=dtype, device=device)

    @classmethod
    def example_kwargs(cls) -> dict:
        return {"entropy_coef": 0.01}  # exercise the entropy term (and its gradient) too
