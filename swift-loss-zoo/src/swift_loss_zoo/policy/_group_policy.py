r"""``GroupPolicyLoss``: what every policy-gradient loss of the zoo shares.

A subclass gives the policy term per token (:meth:`GroupPolicyLoss.per_token_losses`, ``[B, T]``;
PPO's clipped surrogate lives in :class:`~swift_loss_zoo.policy._clipped.ClippedPolicyLoss`). The
base turns it into per-unit losses, the same way for every loss:

.. math::
    L_{i,t} = w_{i,t}\,m^\mathrm{seq}_i\,m^H_{i,t}\,\ell_{i,t}
              + \beta\,\hat k_{i,t}\,[\rho_{i,t}]
              - c_H\,H_{i,t}

* :math:`\ell_{i,t}`: the loss's policy term; :math:`w_{i,t}`: the rollout importance weight
  (``rollout_correction``, :mod:`~swift_loss_zoo.policy._off_policy`); :math:`m^\mathrm{seq}_i`:
  the off-policy sequence mask (``off_policy_mask_threshold``); :math:`m^H_{i,t}`: the high-entropy
  token mask (``top_entropy_quantile``, :mod:`~swift_loss_zoo.policy._entropy`). Each is 1 when off.
* :math:`\hat k`: the KL estimator ``kl_estimator`` of :math:`\mathrm{KL}(\pi_\theta\|\pi_\mathrm{ref})`
  (k1, k2, k3, abs, k1+, k3+), times the importance ratio :math:`\rho` with ``use_bias_correction_kl``
  (DeepSeek-V3.2; TRL's default is ``True``, the zoo's ``False``: the plain GRPO objective).
* :math:`c_H H`: the entropy bonus (``entropy_coef``) on every counted token.

Then ``loss_agg_mode`` (verl's names, :mod:`~swift_loss_zoo.policy._aggregation`) sets the
reduction unit and the per-unit loss; ``BaseLoss`` divides by ``num_items_in_batch`` (units of the
whole accumulated batch) or the local unit count. The KL and entropy terms are aggregated with the
policy term, as verl does. Advantages are ``[B]`` (one per completion) or ``[B, T]`` (per token).

A subclass's ``__init__`` takes its own hyperparameters and ``**options`` for ``super().__init__``;
its public signature lists both (:mod:`~swift_loss_zoo.policy._signature`). ``hidden_options``
names inherited options a subclass fixes itself (they leave its signature).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, NamedTuple

import torch

from swift_loss_zoo.policy._aggregation import LOSS_AGG_MODES, LossAggMode, aggregate, count_units, unit_of
from swift_loss_zoo.policy._entropy import high_entropy_mask
from swift_loss_zoo.policy._estimators import KL_ESTIMATORS, importance_ratio, kl_estimate
from swift_loss_zoo.policy._inputs import group_policy_example, group_policy_inputs, with_token_advantages
from swift_loss_zoo.policy._off_policy import ROLLOUT_CORRECTIONS, off_policy_keep, rollout_weights
from swift_loss_zoo.policy._signature import inherit_signature
from swift_zoo import BaseLoss, ConfigError, LossExample, LossInputError, UnitLosses
from swift_zoo.losses import (
    require_bool,
    require_choice,
    require_in_range,
    require_non_negative,
    require_positive,
    validate_inputs,
)
from swift_zoo.ops import masked_mean, upcast


class PolicyBatch(NamedTuple):
    """Validated inputs in the compute dtype; every ``[B, T]`` tensor is 0 where ``mask`` is false."""

    mask: torch.Tensor  # [B, T] bool
    logps: torch.Tensor  # [B, T] log pi_theta (differentiable)
    log_ratio: torch.Tensor  # [B, T] log pi_theta - log pi_old (unbounded)
    advantages: torch.Tensor  # [B, 1] or [B, T]
    ref_minus_policy: torch.Tensor | None  # [B, T] log pi_ref - log pi_theta, None without a reference
    old_minus_rollout: torch.Tensor | None  # [B, T] detached, None without rollout log-probs
    sampler_minus_policy: torch.Tensor  # [B, T] detached: (rollout, else old) minus log pi_theta
    entropy: torch.Tensor | None  # [B, T] (differentiable), None when not given


class PolicyWeights(NamedTuple):
    """What multiplies the policy term per token; ``None`` is 1 (the option is off)."""

    rollout: torch.Tensor | None  # [B, T] detached rollout importance weights
    keep_sequence: torch.Tensor | None  # [B, 1] bool, off-policy sequence mask
    keep_token: torch.Tensor | None  # [B, T] bool, high-entropy token mask

    def apply(self, losses: torch.Tensor, *, rollout: bool = True) -> torch.Tensor:
        """``losses`` weighted and masked (``rollout=False`` leaves the rollout weight out)."""
        zero = torch.zeros((), dtype=losses.dtype, device=losses.device)
        if rollout and self.rollout is not None:
            losses = losses * self.rollout
        if self.keep_sequence is not None:
            losses = torch.where(self.keep_sequence, losses, zero)
        if self.keep_token is not None:
            losses = torch.where(self.keep_token, losses, zero)
        return losses


class GroupPolicyLoss(BaseLoss):
    """Base of the policy-gradient losses (see the module docstring); not registered itself."""

    inputs = group_policy_inputs()
    reduction_unit: ClassVar[str] = "token"
    loss_agg_modes: ClassVar[tuple[str, ...]] = LOSS_AGG_MODES
    hidden_options: ClassVar[tuple[str, ...]] = ()
    fixed_loss_agg_mode: ClassVar[str | None] = None  # the mode of a loss that hides loss_agg_mode (dr_grpo)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inherit_signature(cls)
        mode = inspect.signature(cls.__init__).parameters.get("loss_agg_mode")
        default = cls.fixed_loss_agg_mode if mode is None else mode.default
        if default in LOSS_AGG_MODES:
            cls.reduction_unit = unit_of(default)

    def __init__(
        self,
        *,
        beta: float = 0.0,
        kl_estimator: Literal["k1", "k2", "k3", "abs", "k1+", "k3+"] = "k3",
        use_bias_correction_kl: bool = False,
        loss_agg_mode: LossAggMode = "token-mean",
        loss_scale_factor: float | None = None,
        rollout_correction: Literal["token_truncate", "token_mask", "sequence_truncate",
                                    "sequence_mask"] | None = None,
        rollout_correction_min: float | None = None,
        rollout_correction_max: float | None = 2.0,
        off_policy_mask_threshold: float | None = None,
        entropy_coef: float = 0.0,
        top_entropy_quantile: float = 1.0,
    ) -> None:
        """Validate and store the options every policy loss shares (see the module docstring)."""
        super().__init__()
        name = self.display_name
        self.beta = require_non_negative(name, "beta", beta)
        self.kl_estimator = require_choice(name, "kl_estimator", kl_estimator, KL_ESTIMATORS)
        self.use_bias_correction_kl = require_bool(name, "use_bias_correction_kl", use_bias_correction_kl)
        self.loss_agg_mode = require_choice(name, "loss_agg_mode", loss_agg_mode, self.loss_agg_modes)
        self.loss_scale_factor = None if loss_scale_factor is None else require_positive(
            name, "loss_scale_factor", loss_scale_factor)
        self.reduction_unit = unit_of(self.loss_agg_mode)
        self.rollout_correction = None if rollout_correction is None else require_choice(
            name, "rollout_correction", rollout_correction, ROLLOUT_CORRECTIONS)
        self.rollout_correction_min = None if rollout_correction_min is None else require_non_negative(
            name, "rollout_correction_min", rollout_correction_min)
        self.rollout_correction_max = None if rollout_correction_max is None else require_positive(
            name, "rollout_correction_max", rollout_correction_max)
        if self.rollout_correction_min is not None and self.rollout_correction_max is not None \
                and self.rollout_correction_min > self.rollout_correction_max:
            expected = f"<= rollout_correction_max = {self.rollout_correction_max:g}"
            message = f"{name}: rollout_correction_min must be {expected}, got {rollout_correction_min!r}"
            raise ConfigError(message, key="rollout_correction_min", expected=expected, found=rollout_correction_min)
        self.off_policy_mask_threshold = None if off_policy_mask_threshold is None else require_non_negative(
            name, "off_policy_mask_threshold", off_policy_mask_threshold)
        self.entropy_coef = require_non_negative(name, "entropy_coef", entropy_coef)
        self.top_entropy_quantile = require_in_range(
            name, "top_entropy_quantile", top_entropy_quantile, 0.0, 1.0)
        if self.top_entropy_quantile < 1.0:
            self.batch_dependent = (
                f"top_entropy_quantile={self.top_entropy_quantile:g}: the entropy threshold is a quantile over the "
                "tokens of each call, so splitting the batch moves it")

    # ------------------------------------------------------------- subclass hooks
    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        """``[B, T]`` policy term (0 where ``batch.mask`` is false); records its metrics."""
        message = f"{type(self).__name__} must implement per_token_losses(batch) -> [B, T] tensor"
        raise NotImplementedError(message)

    def weighted_policy_losses(self, batch: PolicyBatch, weights: PolicyWeights) -> torch.Tensor:
        """The policy term with the rollout weights and masks applied (VESPO folds the weights in instead)."""
        return weights.apply(self.per_token_losses(batch))

    def sequence_policy_losses(self, batch: PolicyBatch, weights: PolicyWeights) -> torch.Tensor | None:
        """``[B]`` policy terms of a loss defined per completion (GMPO), added to each sequence unit; else None."""
        return None

    def extra_token_losses(self, batch: PolicyBatch, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``[B, T]`` terms outside the policy term (PPO's value loss), added before aggregation; else None."""
        return None

    def kl_importance_weight(self, batch: PolicyBatch) -> torch.Tensor:
        """The ratio ``use_bias_correction_kl`` multiplies the KL estimate by (token ratio; GSPO: sequence ratio)."""
        return importance_ratio(batch.log_ratio)

    # ------------------------------------------------------------------ contract
    def validate(self, model_outputs: Any, labels: Any = None) -> dict[str, torch.Tensor]:
        """Validate against ``inputs``, with ``advantages`` declared ``[B, T]`` when a 2-D tensor comes."""
        declared = self.inputs
        advantages = model_outputs.get("advantages") if isinstance(model_outputs, Mapping) else None
        spec = next((s for s in declared if s.key == "advantages"), None)
        if isinstance(advantages, torch.Tensor) and spec is not None and spec.shape == ("B",):
            if advantages.dim() == 2:
                declared = with_token_advantages(declared)
            elif advantages.dim() != 1:
                message = (
                    f"{self.display_name}: model_outputs['advantages'] expected shape [B] (one per completion) or "
                    f"[B, T] (one per token), got {tuple(advantages.shape)} ({advantages.dim()} dims)"
                )
                raise LossInputError(message)
        if labels is not None:
            message = f"{self.display_name}: takes no labels (it reads only model_outputs), got labels"
            raise LossInputError(message)
        return validate_inputs(self.display_name, declared, model_outputs, labels)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        batch = prepare_policy_batch(self, inputs)
        weights = self.policy_weights(batch)
        per_token = self.weighted_policy_losses(batch, weights)
        zero = torch.zeros((), dtype=per_token.dtype, device=per_token.device)
        if batch.ref_minus_policy is not None:
            kl = kl_estimate(batch.ref_minus_policy, self.kl_estimator)
            self.record_metrics(kl=masked_mean(kl.detach(), batch.mask))
            if self.beta > 0:
                if self.use_bias_correction_kl:
                    kl = kl * self.kl_importance_weight(batch)
                per_token = per_token + self.beta * torch.where(batch.mask, kl, zero)
        if batch.entropy is not None:
            self.record_metrics(entropy=masked_mean(batch.entropy.detach(), batch.mask))
            if self.entropy_coef > 0:
                per_token = per_token - self.entropy_coef * batch.entropy
        extra = self.extra_token_losses(batch, inputs)
        if extra is not None:
            per_token = per_token + extra
        units = aggregate(torch.where(batch.mask, per_token, zero), batch.mask, self.loss_agg_mode,
                          self.loss_scale_factor)
        sequence_terms = self.sequence_policy_losses(batch, weights)
        if sequence_terms is not None:
            units = UnitLosses(units.losses + sequence_terms, units.mask)
        return units

    def policy_weights(self, batch: PolicyBatch) -> PolicyWeights:
        """The rollout importance weights and the two masks this instance's options ask for."""
        mask = batch.mask
        rollout = keep_sequence = keep_token = None
        if self.rollout_correction is not None:
            rollout, corrected = rollout_weights(batch.old_minus_rollout, mask, self.rollout_correction,
                                                 self.rollout_correction_min, self.rollout_correction_max)
            self.record_metrics(rollout_weight_mean=masked_mean(rollout, mask),
                                rollout_corrected_fraction=masked_mean(corrected.to(rollout.dtype), mask))
        if self.off_policy_mask_threshold is not None:
            keep_sequence = off_policy_keep(batch.sampler_minus_policy, batch.advantages, mask,
                                            self.off_policy_mask_threshold)
            counted = mask.any(-1)
            self.record_metrics(off_policy_masked_fraction=masked_mean((~keep_sequence.squeeze(-1)).float(), counted))
        if self.top_entropy_quantile < 1.0:
            keep_token = high_entropy_mask(batch.entropy, mask, self.top_entropy_quantile)
            self.record_metrics(high_entropy_fraction=masked_mean(keep_token.float(), mask))
        return PolicyWeights(rollout, keep_sequence, keep_token)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        return count_units(self.validate(model_outputs, labels)["completion_mask"] != 0, self.loss_agg_mode)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return group_policy_example(batch_size=batch_size, generator=generator, dtype=dtype, device=device)

    @classmethod
    def example_kwargs(cls) -> dict:
        return {"beta": 0.04, "entropy_coef": 0.01}  # exercise the KL and entropy terms too


def _require_input(loss: GroupPolicyLoss, inputs: dict[str, torch.Tensor], key: str, why: str, off: str) -> None:
    if inputs.get(key) is None:
        message = (
            f"{loss.display_name}: {why} needs model_outputs[{key!r}] (a float tensor [B, T]); got none. "
            f"Pass it, or {off}."
        )
        raise LossInputError(message)


def prepare_policy_batch(loss: GroupPolicyLoss, inputs: dict[str, torch.Tensor]) -> PolicyBatch:
    """Mask, upcast and align the policy inputs; an absent ``old_per_token_logps`` means on-policy."""
    if loss.beta > 0:
        _require_input(loss, inputs, "ref_per_token_logps", f"beta={loss.beta} > 0 adds a KL penalty and",
                       "set beta=0.0")
    if loss.rollout_correction is not None:
        _require_input(loss, inputs, "rollout_per_token_logps", f"rollout_correction={loss.rollout_correction!r}",
                       "set rollout_correction=None")
    if loss.entropy_coef > 0:
        _require_input(loss, inputs, "entropy", f"entropy_coef={loss.entropy_coef} > 0", "set entropy_coef=0.0")
    if loss.top_entropy_quantile < 1.0:
        _require_input(loss, inputs, "entropy", f"top_entropy_quantile={loss.top_entropy_quantile} < 1",
                       "set top_entropy_quantile=1.0")
    mask = inputs["completion_mask"] != 0
    raw = upcast(inputs["per_token_logps"])
    dtype = raw.dtype
    zero = torch.zeros((), dtype=dtype, device=raw.device)

    def kept(key: str) -> torch.Tensor | None:
        value = inputs.get(key)
        return None if value is None else torch.where(mask, value.to(dtype), zero)

    logps = torch.where(mask, raw, zero)
    # On-policy (one optimisation step per generation): pi_old == pi_theta, ratio exactly 1, and the
    # gradient of the ratio is the gradient of log pi_theta.
    old = kept("old_per_token_logps")
    old = logps.detach() if old is None else old
    ref, rollout = kept("ref_per_token_logps"), kept("rollout_per_token_logps")
    advantages = inputs["advantages"].to(dtype)
    advantages = advantages.unsqueeze(-1) if advantages.dim() == 1 else torch.where(mask, advantages, zero)
    sampler = old if rollout is None else rollout
    return PolicyBatch(
        mask=mask,
        logps=logps,
        log_ratio=logps - old,
        advantages=advantages,
        ref_minus_policy=None if ref is None else ref - logps,
        old_minus_rollout=None if rollout is None else (old - rollout).detach(),
        sampler_minus_policy=(sampler - logps).detach(),
        entropy=kept("entropy"),
    )
