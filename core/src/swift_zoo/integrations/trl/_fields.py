"""TRL config fields that mean the same as a zoo loss's keyword argument, per trainer.

The rule: a TRL trainer's config is the user's config, so every field below fills the zoo kwarg of
the same meaning (when the zoo loss accepts it); ``zoo_config["loss_kwargs"]`` overrides it. A field
set away from its TRL default *and* to a different value in ``loss_kwargs`` is a conflict and an
error: the same hyperparameter set twice. So ``ZooDPOTrainer`` with the zoo's ``ipo`` under
``DPOConfig(beta=0.5)`` is TRL's ``loss_type="ipo"`` with ``beta=0.5``.

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


@dataclass(frozen=True)
class FieldMapping:
    """``zoo_kwarg`` of a zoo loss filled from the TRL config field ``trl_field``.

    :param read: reads the value from the TRL config (default: the field itself); ``None`` leaves the
        zoo default.
    :param losses: only these zoo losses (canonical names); ``None``: every loss with the kwarg.
    :param unless: never these zoo losses.
    """

    zoo_kwarg: str
    trl_field: str
    read: Callable[[Any], Any] | None = None
    losses: frozenset[str] | None = None
    unless: frozenset[str] = frozenset()
    note: str = ""

    def applies_to(self, loss_name: str) -> bool:
        if loss_name in self.unless:
            return False
        return self.losses is None or loss_name in self.losses

    def value(self, args: Any) -> Any:
        return (self.read or _field(self.trl_field))(args)


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
        if value is not None:
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
