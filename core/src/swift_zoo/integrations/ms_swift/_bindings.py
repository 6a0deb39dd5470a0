"""Where a zoo loss's kwargs come from in ms-swift: its own arguments first, one env var for the rest.

* **ms-swift's arguments** bind to a zoo kwarg where they mean the same thing (:data:`BINDINGS`):
  ``--beta`` -> ``beta``, ``--label_smoothing`` -> ``label_smoothing``, ``--simpo_gamma`` ->
  ``gamma_beta_ratio = simpo_gamma / beta``, ``--desirable_weight`` -> ``desirable_weight``, ... A
  binding applies only to a loss whose constructor takes that kwarg (and, for some, only to the
  named losses or trainers).
* **Every other kwarg** comes from the environment variable ``SWIFT_ZOO_LOSS_KWARGS``: a JSON object
  (``'{"gamma_beta_ratio": 0.3}'``) applied to the zoo loss of the run, or, for several zoo losses
  in one DPO run, an object keyed by their ``zoo:`` names (``'{"zoo:dpo": {...}, "zoo:hinge": {...}}'``).
  It wins over a binding and is validated against the loss's signature, so a typo is an error
  with "did you mean".

Some ms-swift arguments are *terms ms-swift adds outside the loss* (``--rpo_alpha`` in DPO,
``--cpo_alpha`` in CPO). They stay ms-swift's for every zoo loss, except a zoo loss that has the
same term as a kwarg (``rpo``'s ``alpha``, ``cpo``'s ``cpo_alpha``): there the value goes into the
loss and the trainer's own term is switched off, so it is never counted twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from swift_zoo._config import coerce_value
from swift_zoo._errors import ConfigError

KWARGS_ENV = "SWIFT_ZOO_LOSS_KWARGS"
_PREFERENCE = ("dpo", "cpo", "orpo", "kto")
_PAIRED = ("dpo", "cpo", "orpo")
# ms-swift's infonce options that the zoo's infonce does not have: refused rather than ignored
UNSUPPORTED_ENV = {
    "infonce": ("INFONCE_HARD_NEGATIVES", "INFONCE_MASK_FAKE_NEGATIVE", "INFONCE_INCLUDE_QQ", "INFONCE_INCLUDE_DD"),
}


def _argument(name: str) -> Callable[[Any], Any]:
    return lambda args: getattr(args, name, None)


def _environment(name: str) -> Callable[[Any], Any]:
    return lambda args: os.environ.get(name)


def _gamma_beta_ratio(args: Any) -> float | None:
    gamma, beta = getattr(args, "simpo_gamma", None), getattr(args, "beta", None)
    if gamma is None or not beta:
        return None
    return float(gamma) / float(beta)


@dataclass(frozen=True)
class Binding:
    """One ms-swift setting that gives a zoo kwarg its value.

    :param kwarg: the zoo constructor argument.
    :param source: what the user sets, as shown in logs and docs.
    :param read: ``args -> value``; ``None`` means unset (no binding).
    :param rlhf_types: the ``--rlhf_type`` values it applies under (empty: ``swift sft/pt``).
    :param losses: the zoo losses (registry names) it is limited to (empty: any taking ``kwarg``).
    :param host_term: the trainer attribute holding a term ms-swift adds outside the loss, switched
        off when this binding applies (so the term is not counted twice).
    :param skip_zero: ignore the value 0 (ms-swift's "unset" for it, e.g. exo_pair's smoothing).
    """

    kwarg: str
    source: str
    read: Callable[[Any], Any]
    rlhf_types: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    host_term: str | None = None
    skip_zero: tuple[str, ...] = ()

    def value_for(self, args: Any, loss_name: str, rlhf_type: str | None) -> Any:
        """The bound value for ``loss_name`` under ``rlhf_type``, or ``None`` when it does not apply."""
        if (rlhf_type or None) not in (self.rlhf_types or (None,)):
            return None
        if self.losses and loss_name not in self.losses:
            return None
        value = self.read(args)
        if value is None or (loss_name in self.skip_zero and not value):
            return None
        return value


BINDINGS: tuple[Binding, ...] = (
    Binding("beta", "--beta", _argument("beta"), rlhf_types=_PREFERENCE),
    Binding("label_smoothing", "--label_smoothing", _argument("label_smoothing"), rlhf_types=_PAIRED,
            skip_zero=("exo_pair",)),
    Binding("gamma_beta_ratio", "--simpo_gamma / --beta", _gamma_beta_ratio, rlhf_types=_PAIRED),
    Binding("cpo_alpha", "--cpo_alpha", _argument("cpo_alpha"), rlhf_types=("cpo",), host_term="cpo_alpha"),
    Binding("alpha", "--rpo_alpha", _argument("rpo_alpha"), rlhf_types=("dpo",), losses=("rpo",),
            host_term="rpo_alpha"),
    Binding("tau", "--discopop_tau", _argument("discopop_tau"), rlhf_types=("dpo",), losses=("discopop",)),
    Binding("desirable_weight", "--desirable_weight", _argument("desirable_weight"), rlhf_types=("kto",)),
    Binding("undesirable_weight", "--undesirable_weight", _argument("undesirable_weight"), rlhf_types=("kto",)),
    Binding("temperature", "INFONCE_TEMPERATURE", _environment("INFONCE_TEMPERATURE"), losses=("infonce",)),
    Binding("use_batch", "INFONCE_USE_BATCH", _environment("INFONCE_USE_BATCH"), losses=("infonce",)),
    Binding("temperature", "LISTWISE_RERANKER_TEMPERATURE", _environment("LISTWISE_RERANKER_TEMPERATURE"),
            losses=("listwise_reranker",)),
    Binding("min_group_size", "LISTWISE_RERANKER_MIN_GROUP_SIZE",
            _environment("LISTWISE_RERANKER_MIN_GROUP_SIZE"), losses=("listwise_reranker",)),
)


def env_kwargs(host_name: str) -> dict[str, Any]:
    """The kwargs ``SWIFT_ZOO_LOSS_KWARGS`` gives the zoo loss ``host_name`` (``{}`` when unset)."""
    text = os.environ.get(KWARGS_ENV, "").strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"{KWARGS_ENV} must be a JSON object, e.g. '{{\"beta\": 0.1}}'; it is not valid JSON: {exc}"
        raise ConfigError(message, key=KWARGS_ENV, expected="a JSON object", found=text) from None
    if not isinstance(data, Mapping):
        message = f"{KWARGS_ENV} must be a JSON object, e.g. '{{\"beta\": 0.1}}', got {type(data).__name__} {text}"
        raise ConfigError(message, key=KWARGS_ENV, expected="a JSON object", found=text)
    from swift_zoo.integrations.ms_swift._names import canonical, is_zoo_name

    if data and all(is_zoo_name(key) for key in data):
        per_loss = {canonical(key): value for key, value in data.items()}
        value = per_loss.get(canonical(host_name), {})
        if not isinstance(value, Mapping):
            message = f"{KWARGS_ENV}[{host_name!r}] must be a JSON object of kwargs, got {value!r}"
            raise ConfigError(message, key=KWARGS_ENV, expected="a JSON object", found=value)
        return dict(value)
    return dict(data)


def unsupported_env(loss_name: str) -> list[str]:
    """ms-swift environment options set for ``loss_name`` that the zoo loss does not implement."""
    found = []
    for name in UNSUPPORTED_ENV.get(loss_name, ()):
        value = os.environ.get(name)
        if value is None:
            continue
        if name.endswith(("_NEGATIVE", "_QQ", "_DD")) and not coerce_value(name, name, value, bool):
            continue
        found.append(f"{name}={value}")
    return found
