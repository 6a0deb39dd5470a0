"""``GroupPolicyLoss``: what the GRPO family shares (inputs, ratios, KL term, reduction, metrics).

A subclass gives the per-token surrogate (:meth:`GroupPolicyLoss.per_token_losses`; by default
PPO's clipped surrogate, :meth:`GroupPolicyLoss.clipped_surrogate`) and its normalisation through
``reduction_unit``:

* ``"token"``: every completion token is a unit, so the loss is ``sum_{i,t} L_{i,t} / N`` with ``N``
  the number of completion tokens (of the whole accumulated batch when ``num_items_in_batch`` is
  given): the BNPO / DAPO / CISPO normalisation.
* ``"sequence"``: every completion with at least one counted token is a unit, its value is
  ``sum_t L_{i,t} / D_i`` with ``D_i`` from :meth:`GroupPolicyLoss.sequence_denominator` (its token
  count for GRPO / SAPO, the constant ``max_completion_length`` for Dr. GRPO), and ``N`` counts
  completions. Rows with no counted token are not units (TRL divides by the row count ``B``
  instead, so an all-padding row there dilutes the loss; here it does not).

The KL penalty ``beta * k3`` is added to every per-token loss before the reduction, as in TRL. With
``unbiased_kl=True`` it is ``beta * rho * k3``, the importance ratio ``rho`` kept differentiable
(DeepSeek-V3.2, arXiv:2512.02556; TRL's ``use_bias_correction_kl``, on by default there): the value is
unchanged on-policy (``rho = 1``), the gradient gains ``beta * k3 * grad log pi_theta``, which makes it the
unbiased gradient of KL(pi_theta || pi_ref) for tokens sampled from pi_old.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch

from swift_loss_zoo.policy._estimators import importance_ratio, kl_estimate
from swift_loss_zoo.policy._inputs import group_policy_example, group_policy_inputs
from swift_zoo import BaseLoss, ConfigError, LossExample, LossInputError, UnitLosses
from swift_zoo.losses import require_in_range, require_non_negative, require_positive
from swift_zoo.ops import masked_count, masked_mean, masked_sum, upcast


class PolicyBatch(NamedTuple):
    """Validated inputs in the compute dtype; every per-token tensor is 0 where ``mask`` is false."""

    mask: torch.Tensor  # [B, T] bool
    logps: torch.Tensor  # [B, T] log pi_theta (differentiable)
    log_ratio: torch.Tensor  # [B, T] log pi_theta - log pi_old (unbounded)
    advantages: torch.Tensor  # [B, 1]
    kl: torch.Tensor | None  # [B, T] k3 estimate of KL(pi_theta || pi_ref), None without a reference


def prepare_policy_batch(loss: BaseLoss, inputs: dict[str, torch.Tensor], *, need_reference: bool) -> PolicyBatch:
    """Mask, upcast and align the policy inputs; an absent ``old_per_token_logps`` means on-policy."""
    mask = inputs["completion_mask"] != 0
    raw = upcast(inputs["per_token_logps"])
    dtype = raw.dtype
    zero = torch.zeros((), dtype=dtype, device=raw.device)
    logps = torch.where(mask, raw, zero)
    old = inputs.get("old_per_token_logps")
    # On-policy (one optimisation step per generation): pi_old == pi_theta, ratio exactly 1, and the
    # gradient of the ratio is the gradient of log pi_theta.
    old = logps.detach() if old is None else torch.where(mask, old.to(dtype), zero)
    ref = inputs.get("ref_per_token_logps")
    if ref is None and need_reference:
        message = (
            f"{loss.display_name}: beta={loss.beta} > 0 adds a KL penalty and needs "
            "model_outputs['ref_per_token_logps'] (a float tensor [B, T] of reference log-probs); got none. "
            "Pass it, or set beta=0.0."
        )
        raise LossInputError(message)
    kl = None if ref is None else kl_estimate(torch.where(mask, ref.to(dtype), zero) - logps, "k3")
    advantages = inputs["advantages"].to(dtype)
    return PolicyBatch(mask, logps, logps - old, advantages.unsqueeze(-1), kl)


def clip_fractions(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                   low: float | None, high: float | None) -> dict[str, torch.Tensor]:
    """Fractions of counted units whose clipped branch is active (TRL's ``clip_ratio/*``).

    ``low``: ratio below ``low`` with a negative advantage; ``high``: above ``high`` with a
    positive advantage; ``region``: either. A ``None`` bound never clips.
    """
    with torch.no_grad():
        below = (ratio < low) & (advantages < 0) if low is not None else torch.zeros_like(mask)
        above = (ratio > high) & (advantages > 0) if high is not None else torch.zeros_like(mask)
        below, above = below & mask, above & mask
        count = masked_count(mask).clamp(min=1)
        return {
            "clip_fraction_low": below.sum() / count,
            "clip_fraction_high": above.sum() / count,
            "clip_fraction": (below | above).sum() / count,
        }


class GroupPolicyLoss(BaseLoss):
    """Base of the GRPO-family losses (see the module docstring); not registered itself."""

    inputs = group_policy_inputs()
    reduction_unit: ClassVar[str] = "token"

    epsilon_low: float | None
    epsilon_high: float | None
    beta: float
    delta: float | None = None
    unbiased_kl: bool = False

    def __init__(self, *, epsilon_low: float = 0.2, epsilon_high: float = 0.2, beta: float = 0.0,
                 delta: float | None = None, unbiased_kl: bool = False) -> None:
        """Validate and store the shared hyperparameters (GRPO's defaults); ``None`` turns a clipping
        bound off (for subclasses whose surrogate allows it)."""
        super().__init__()
        name = self.display_name
        self.epsilon_low = None if epsilon_low is None else require_in_range(
            name, "epsilon_low", epsilon_low, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        self.epsilon_high = None if epsilon_high is None else require_positive(name, "epsilon_high", epsilon_high)
        self.beta = require_non_negative(name, "beta", beta)
        if delta is not None:
            bound = 1.0 + (self.epsilon_high or 0.0)
            valid = isinstance(delta, (int, float)) and not isinstance(delta, bool)
            if not valid or not bound < delta < float("inf"):
                expected = f"None or a float > 1 + epsilon_high = {bound:g}"
                message = f"{name}: delta must be {expected}, got {delta!r}"
                raise ConfigError(message, key="delta", expected=expected, found=delta)
            delta = float(delta)
        self.delta = delta
        if not isinstance(unbiased_kl, bool):
            message = f"{name}: unbiased_kl must be a bool, got {unbiased_kl!r}"
            raise ConfigError(message, key="unbiased_kl", expected="a bool", found=unbiased_kl)
        self.unbiased_kl = unbiased_kl

    # ------------------------------------------------------------- subclass hooks
    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        """``[B, T]`` surrogate losses (0 where ``batch.mask`` is false); records its metrics."""
        return self.clipped_surrogate(batch)

    def sequence_denominator(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``D_i`` of a sequence-unit loss: the completion's token count (GRPO)."""
        return masked_count(mask, -1).clamp(min=1).to(dtype)

    # ------------------------------------------------------------------ contract
    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        batch = prepare_policy_batch(self, inputs, need_reference=self.beta > 0)
        per_token = self.per_token_losses(batch)
        if batch.kl is not None:
            self.record_metrics(kl=masked_mean(batch.kl, batch.mask))
            if self.beta > 0:
                per_token = per_token + self.beta * self.kl_penalty(batch.kl, batch.log_ratio)
        return self.reduce_tokens(per_token, batch.mask)

    def kl_penalty(self, kl: torch.Tensor, log_ratio: torch.Tensor) -> torch.Tensor:
        """The per-token KL term before ``beta``: ``k3``, times the importance ratio with ``unbiased_kl``.

        ``log_ratio`` broadcasts against ``kl`` (``[B, T]`` per token, ``[B, 1]`` for a sequence ratio).
        """
        return kl * importance_ratio(log_ratio) if self.unbiased_kl else kl

    def reduce_tokens(self, per_token: torch.Tensor, mask: torch.Tensor) -> UnitLosses:
        """Per-unit losses of the declared ``reduction_unit`` from ``[B, T]`` per-token losses."""
        if self.reduction_unit == "token":
            return UnitLosses(per_token, mask)
        per_sequence = masked_sum(per_token, mask, -1) / self.sequence_denominator(mask, per_token.dtype)
        return UnitLosses(per_sequence, mask.any(-1))

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        mask = self.validate(model_outputs, labels)["completion_mask"] != 0
        return mask.sum() if self.reduction_unit == "token" else mask.any(-1).sum()

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return group_policy_example(batch_size=batch_size, generator=generator, dtype=dtype, device=device)

    @classmethod
    def example_kwargs(cls) -> dict:
        return {"beta": 0.04}  # exercise the KL term too

    # ------------------------------------------------------------------- helpers
    def clipped_surrogate(self, batch: PolicyBatch) -> torch.Tensor:
        r"""PPO's clipped surrogate per token, ``-min(rho A, clip(rho, 1-eps_low, 1+eps_high) A)``.

        With ``delta`` (INTELLECT-2's two-sided clipping) the first term uses ``min(rho, delta)``, which
        bounds the otherwise unbounded loss of a large ratio with a negative advantage.
        """
        ratio = importance_ratio(batch.log_ratio)
        low = 1.0 - self.epsilon_low
        high = 1.0 + self.epsilon_high
        clipped = torch.clamp(ratio, low, high)
        unclipped = ratio if self.delta is None else torch.clamp(ratio, max=self.delta)
        losses = -torch.minimum(unclipped * batch.advantages, clipped * batch.advantages)
        advantages = batch.advantages.expand_as(ratio)
        self.record_metrics(ratio_mean=masked_mean(ratio.detach(), batch.mask),
                            **clip_fractions(ratio.detach(), advantages, batch.mask, low, high))
        return torch.where(batch.mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device))
