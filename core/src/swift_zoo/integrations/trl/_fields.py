"""TRL config fields that mean the same as a zoo loss's keyword argument, per trainer.

The rule: a TRL trainer's config is the user's config, so every field below fills the zoo kwarg of
the same meaning (when the zoo loss accepts it); ``zoo_config["loss_kwargs"]`` overrides it. A field
set away from its TRL default *and* to a different value in ``loss_kwargs`` is a conflict and an
error: the same hyperparameter set twice. So ``ZooDPOTrainer`` with the zoo's ``ipo`` under
``DPOConfig(beta=0.5)`` is TRL's ``loss_type="ipo"`` with ``beta=0.5``.

A field that TRL applies whatever its ``loss_type`` (``every_loss=True``: DPO's ``ld_alpha``,
``use_weighting``, ``f_divergence_type``; GRPO's ``off_policy_mask_threshold``, ``top_entropy_quantile``,
``entropy_coef``, the vLLM importance-sampling correction) cannot be honoured by a zoo loss without the
kwarg: set away from its TRL default, it is refused (:func:`unhonoured_fields`), never dropped.

Imports neither torch nor TRL.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from swift_zoo._errors import ConfigError


def _field(name: str) -> Callable[[Any], Any]:
    return lambda args: getattr(args, name)


def _grpo_epsilon_high(args: Any) -> Any:
    # GRPOTrainer.__init__: `self.epsilon_high = args.epsilon_high if args.epsilon_high is not None else args.epsilon`
    return args.epsilon_high if args.epsilon_high is not None else args.epsilon


def _cispo_epsilon_high(args: Any) -> Any:
    # TRL's cispo clamps the ratio at `epsilon_high` itself (grpo_trainer.py, `_compute_loss`); the zoo's cispo
    # clamps it at 1 + epsilon_high. Unset (None) in TRL means the zoo default (a cap of 5, TRL's recommendation).
    return None if args.epsilon_high is None else args.epsilon_high - 1.0


def _cpo_loss_type(args: Any) -> Any:
    # CPOConfig.loss_type sigmoid / hinge / ipo is the zoo cpo's own loss_type; "simpo" is the zoo loss simpo
    return args.loss_type if args.loss_type in ("sigmoid", "hinge", "ipo") else None


def _simpo_gamma_ratio(args: Any) -> Any:
    # TRL's CPO simpo subtracts simpo_gamma / beta from the average log-prob margin before multiplying by beta
    return args.simpo_gamma / args.beta


def _alphapo_alpha(args: Any) -> Any:
    # CPOConfig.alpha = 0 means "no AlphaPO reward": leave the zoo alphapo's own default
    return args.alpha or None


#: Returned by a ``read`` function: leave the zoo default (``None`` does too, unless ``none_is_value``).
SKIP = object()


def _vllm_correction(args: Any) -> bool:
    # GRPOTrainer._generate_and_score_completions: the ratio exists only with use_vllm and the correction on
    return bool(getattr(args, "use_vllm", False) and args.vllm_importance_sampling_correction)


def _rollout_correction(args: Any) -> Any:
    return args.vllm_importance_sampling_mode if _vllm_correction(args) else SKIP


def _rollout_correction_min(args: Any) -> Any:
    return args.vllm_importance_sampling_clip_min if _vllm_correction(args) else SKIP


def _rollout_correction_max(args: Any) -> Any:
    # None in TRL is "no upper bound", which the zoo spells None too (not its default 2.0)
    return args.vllm_importance_sampling_clip_max if _vllm_correction(args) else SKIP


@dataclass(frozen=True)
class FieldMapping:
    """``zoo_kwarg`` of a zoo loss filled from the TRL config field ``trl_field``.

    :param read: reads the value from the TRL config (default: the field itself); ``None`` leaves the
        zoo default.
    :param losses: only these zoo losses (canonical names); ``None``: every loss with the kwarg.
    :param unless: never these zoo losses.
    :param every_loss: TRL applies the field whatever its ``loss_type``, so a zoo loss without ``zoo_kwarg``
        cannot honour it: set away from TRL's default, it is refused (:func:`unhonoured_fields`).
    :param none_is_value: a ``None`` read is passed on as ``None`` (``read`` returns :data:`SKIP` to leave
        the zoo default).
    """

    zoo_kwarg: str
    trl_field: str
    read: Callable[[Any], Any] | None = None
    losses: frozenset[str] | None = None
    unless: frozenset[str] = frozenset()
    note: str = ""
    every_loss: bool = False
    none_is_value: bool = False

    def applies_to(self, loss_name: str) -> bool:
        if loss_name in self.unless:
            return False
        return self.losses is None or loss_name in self.losses

    def value(self, args: Any) -> Any:
        return (self.read or _field(self.trl_field))(args)

    def skips(self, value: Any) -> bool:
        """Whether a read ``value`` leaves the zoo default."""
        return value is SKIP or (value is None and not self.none_is_value)


FIELD_MAPPINGS: dict[str, tuple[FieldMapping, ...]] = {
    "sft": (
        FieldMapping("label_smoothing", "label_smoothing_factor",
                     losses=frozenset({"cross_entropy", "fused_linear_cross_entropy"})),
    ),
    "dpo": (
        FieldMapping("beta", "beta"),
        # TRL's sigmoid ignores label_smoothing (only robust, exo_pair and the aot pair read it)
        FieldMapping("label_smoothing", "label_smoothing",
                     losses=frozenset({"robust_dpo", "exo_pair", "aot", "aot_unpaired"})),
        FieldMapping("tau", "discopop_tau", losses=frozenset({"discopop"})),
        # DPOTrainer._compute_loss applies these to every loss_type it allows them with
        FieldMapping("f_divergence_type", "f_divergence_type", every_loss=True),
        FieldMapping("f_alpha_divergence_coef", "f_alpha_divergence_coef"),
        FieldMapping("ld_alpha", "ld_alpha", every_loss=True),
        FieldMapping("use_weighting", "use_weighting", every_loss=True),
    ),
    "kto": (
        FieldMapping("beta", "beta"),
        FieldMapping("desirable_weight", "desirable_weight"),
        FieldMapping("undesirable_weight", "undesirable_weight"),
    ),
    "grpo": (
        FieldMapping("beta", "beta"),
        FieldMapping("epsilon_low", "epsilon", unless=frozenset({"cispo"})),
        FieldMapping("epsilon_high", "epsilon_high", read=_grpo_epsilon_high, unless=frozenset({"cispo"}),
                     note="None in TRL means epsilon"),
        FieldMapping("epsilon_high", "epsilon_high", read=_cispo_epsilon_high, losses=frozenset({"cispo"}),
                     note="TRL's cispo cap is epsilon_high, the zoo's is 1 + epsilon_high"),
        FieldMapping("delta", "delta"),
        FieldMapping("max_completion_length", "max_completion_length"),
        FieldMapping("temperature_pos", "sapo_temperature_pos"),
        FieldMapping("temperature_neg", "sapo_temperature_neg"),
        FieldMapping("use_bias_correction_kl", "use_bias_correction_kl"),
        FieldMapping("k_pos", "vespo_k_pos"),
        FieldMapping("lambda_pos", "vespo_lambda_pos"),
        FieldMapping("k_neg", "vespo_k_neg"),
        FieldMapping("lambda_neg", "vespo_lambda_neg"),
        # GRPOTrainer._compute_loss applies these whatever the loss_type
        FieldMapping("off_policy_mask_threshold", "off_policy_mask_threshold", every_loss=True),
        FieldMapping("top_entropy_quantile", "top_entropy_quantile", every_loss=True),
        FieldMapping("entropy_coef", "entropy_coef", every_loss=True,
                     note="ZooGRPOTrainer refuses it unless the loss's unit is a token (TRL's bonus is a token mean)"),
        FieldMapping("rollout_correction", "vllm_importance_sampling_mode", read=_rollout_correction,
                     every_loss=True, note="with use_vllm and vllm_importance_sampling_correction"),
        FieldMapping("rollout_correction_min", "vllm_importance_sampling_clip_min", read=_rollout_correction_min,
                     none_is_value=True),
        FieldMapping("rollout_correction_max", "vllm_importance_sampling_clip_max", read=_rollout_correction_max,
                     none_is_value=True),
    ),
    "cpo": (
        FieldMapping("beta", "beta"),
        FieldMapping("label_smoothing", "label_smoothing"),
        FieldMapping("loss_type", "loss_type", read=_cpo_loss_type, losses=frozenset({"cpo"}),
                     note="sigmoid, hinge or ipo"),
        FieldMapping("cpo_alpha", "cpo_alpha", losses=frozenset({"cpo"})),
        FieldMapping("sft_weight", "cpo_alpha", losses=frozenset({"simpo", "alphapo"})),
        FieldMapping("gamma_beta_ratio", "simpo_gamma", read=_simpo_gamma_ratio, losses=frozenset({"simpo", "alphapo"}),
                     note="simpo_gamma / beta"),
        FieldMapping("alpha", "alpha", read=_alphapo_alpha, losses=frozenset({"alphapo"})),
    ),
    "orpo": (
        FieldMapping("beta", "beta"),
    ),
}


def _default_of(args: Any, name: str) -> Any:
    for field in dataclasses.fields(args):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
    return dataclasses.MISSING


def loss_kwargs_from_config(trainer: str, owner: str, loss_cls: type, args: Any,
                            loss_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The zoo loss's kwargs: mapped TRL config fields, then ``loss_kwargs`` on top.

    :param trainer: a key of :data:`FIELD_MAPPINGS` (``"sft"``, ``"dpo"``, ..., ``"cpo"``, ``"orpo"``).
    :param owner: the trainer class name, for messages.
    :raises ConfigError: a hyperparameter set both in the TRL config and, differently, in ``loss_kwargs``.
    """
    accepted = set(inspect.signature(loss_cls.__init__).parameters)
    loss_name = getattr(loss_cls, "name", "")
    mapped: dict[str, tuple[Any, FieldMapping]] = {}
    for mapping in FIELD_MAPPINGS[trainer]:
        if mapping.zoo_kwarg not in accepted or not mapping.applies_to(loss_name) or not hasattr(args, mapping.trl_field):
            continue
        value = mapping.value(args)
        if not mapping.skips(value):
            mapped[mapping.zoo_kwarg] = (value, mapping)
    result = {key: value for key, (value, _) in mapped.items()}
    for key, value in loss_kwargs.items():
        if key in mapped:
            trl_value, mapping = mapped[key]
            explicit = getattr(args, mapping.trl_field) != _default_of(args, mapping.trl_field)
            if explicit and trl_value != value:
                message = (
                    f"{owner}: {loss_name} {key!r} is set twice: {type(args).__name__}.{mapping.trl_field}="
                    f"{getattr(args, mapping.trl_field)!r} and zoo_config['loss_kwargs'][{key!r}]={value!r}; "
                    "set it in one place"
                )
                raise ConfigError(message, key=key, expected="one value", found=(trl_value, value))
        result[key] = value
    return result


def field_of(trainer: str, loss_cls: type, zoo_kwarg: str, args: Any) -> str | None:
    """The TRL config field that filled ``zoo_kwarg`` of ``loss_cls`` (``None``: none did), for messages."""
    loss_name = getattr(loss_cls, "name", "")
    for mapping in FIELD_MAPPINGS[trainer]:
        if mapping.zoo_kwarg == zoo_kwarg and mapping.applies_to(loss_name) and hasattr(args, mapping.trl_field) \
                and not mapping.skips(mapping.value(args)):
            return mapping.trl_field
    return None


def unhonoured_fields(trainer: str, loss: Any, args: Any) -> list[tuple[str, Any, str]]:
    """``(field, value, why)`` for each ``every_loss`` field in effect (set away from TRL's default, or read
    as a value by its own ``read``) whose zoo kwarg ``loss`` (an instance or class) does not take."""
    loss_cls = loss if isinstance(loss, type) else type(loss)
    accepted = set(inspect.signature(loss_cls.__init__).parameters)
    name = getattr(loss_cls, "name", "") or loss_cls.__name__
    found = []
    for mapping in FIELD_MAPPINGS[trainer]:
        if not mapping.every_loss or mapping.zoo_kwarg in accepted or not hasattr(args, mapping.trl_field):
            continue
        value = getattr(args, mapping.trl_field)
        if mapping.skips(mapping.value(args)):
            continue
        if mapping.read is None and value == _default_of(args, mapping.trl_field):
            continue  # (a mapping with its own read is in effect whenever it reads a value: the vLLM correction)
        found.append((mapping.trl_field, value, f"TRL applies it to every loss type, and the zoo loss {name!r} "
                                                f"takes no {mapping.zoo_kwarg!r}"))
    return found
