"""How TRL, verl, ms-swift and Liger spell the policy losses: :class:`swift_zoo.Equivalence` builders.

The ``references`` nox session compares every equal TRL, verl and Liger declaration numerically (values
and gradients, ``tests_references/losses/test_policy_equivalence.py``); ms-swift's GRPO loss lives inside
its trainer and is not installed there, so its declarations are documentation, read from ms-swift 4.6.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swift_zoo import Equivalence

TRL = "trl==1.16.0"
VERL = "verl==0.9.1"
MS_SWIFT = "ms-swift==4.6"
LIGER = "liger-kernel==0.8.5"

TRL_SETTINGS = (
    "epsilon / epsilon_high = epsilon_low / epsilon_high, beta, delta, top_entropy_quantile and "
    "off_policy_mask_threshold as here; use_bias_correction_kl=False (TRL's default is True: set it there, or "
    "use_bias_correction_kl=True here); one process, one micro-batch per step (else pass num_items_in_batch); "
    "entropy_coef=0 (TRL's entropy bonus is a token mean of the micro-batch whatever the loss type)"
)
TRL_ROW_COUNT = "; TRL divides by the B rows, all-padding rows included (here a completion without tokens is no unit)"
VERL_SETTINGS = (
    "clip_ratio_low / clip_ratio_high = epsilon_low / epsilon_high; use_kl_loss with kl_loss_coef=beta and "
    "kl_loss_type = kl_estimator ('low_var_kl' for k3, 'kl' k1, 'mse' k2, 'abs', 'k1+', 'k3+'), equal while the "
    "k3 estimate stays below 10 (verl clamps it there); entropy_coeff=entropy_coef; rollout_is_weights from "
    "rollout_correction; global batch_num_tokens / global_batch_size = num_items_in_batch"
)
LIGER_SETTINGS = "LigerFusedLinearGRPOLoss's per-token loss (ppo_loss_fn); beta as here (Liger's default is 0.04)"


def _record(library: str, name: str, versions: str, zoo_kwargs: Mapping[str, Any] | None, settings: str,
            differs: str) -> Equivalence:
    return Equivalence(library, name, versions, dict(zoo_kwargs or {}), settings, differs)


def trl_grpo(loss_type: str, *, zoo_kwargs: Mapping[str, Any] | None = None, sequence: bool = False,
             settings: str = "", rows: bool = False, differs: str = "") -> Equivalence:
    """TRL ``GRPOConfig(loss_type=...)`` (``importance_sampling_level="sequence"`` when ``sequence``)."""
    level = ", importance_sampling_level='sequence'" if sequence else ""
    text = TRL_SETTINGS + (f"; {settings}" if settings else "") + (TRL_ROW_COUNT if rows else "")
    return _record("trl", f"GRPOConfig(loss_type={loss_type!r}{level})", TRL, zoo_kwargs, text, differs)


def verl_policy(loss_mode: str, loss_agg_mode: str, *, zoo_kwargs: Mapping[str, Any] | None = None,
                settings: str = "", differs: str = "") -> Equivalence:
    """verl ``actor.policy_loss.loss_mode`` with ``actor.loss_agg_mode``."""
    name = f"actor.policy_loss.loss_mode={loss_mode!r}, actor.loss_agg_mode={loss_agg_mode!r}"
    return _record("verl", name, VERL, zoo_kwargs, VERL_SETTINGS + (f"; {settings}" if settings else ""), differs)


def ms_swift_grpo(loss_type: str, *, zoo_kwargs: Mapping[str, Any] | None = None, settings: str = "",
                  differs: str = "") -> Equivalence:
    """ms-swift ``--rlhf_type grpo --loss_type ...`` (its defaults: beta 0.04; k3 clamped to [-10, 10])."""
    text = ("ms-swift's default beta is 0.04; it clamps the k3 estimate to [-10, 10]; without "
            "rollout_importance_sampling_mode and off_policy_sequence_mask_delta (ms-swift weights the KL term by the "
            "rollout ratio too, takes a geometric mean for its sequence ratio, and drops masked sequences from the "
            "normaliser)") + (f"; {settings}" if settings else "")
    return _record("ms-swift", f"--rlhf_type grpo --loss_type {loss_type}", MS_SWIFT, zoo_kwargs, text, differs)


def liger_grpo(loss_type: str, *, zoo_kwargs: Mapping[str, Any] | None = None, sequence: bool = False,
               settings: str = "", rows: bool = False, differs: str = "") -> Equivalence:
    """Liger ``LigerFusedLinearGRPOLoss(loss_type=...)``."""
    level = ", importance_sampling_level='sequence'" if sequence else ""
    text = LIGER_SETTINGS + (f"; {settings}" if settings else "") + (
        "; Liger divides by the B rows, all-padding rows included" if rows else "")
    name = f"LigerFusedLinearGRPOLoss(loss_type={loss_type!r}{level})"
    return _record("liger", name, LIGER, zoo_kwargs, text, differs)
