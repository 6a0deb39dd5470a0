"""A zoo loss chosen in ms-swift: resolved, kwargs gathered and validated, built, placed in its family.

:func:`plan_loss` is the one place a ``--loss_type zoo:<name>`` becomes a loss: at argument time
(before the model loads, so a typo or a loss under the wrong trainer fails early) and again inside
the trainer. The kwargs found at argument time travel to the trainer on the training arguments
(:data:`PLANS_ATTRIBUTE`), because ms-swift drops arguments the trainer's config class does not
declare (``--simpo_gamma`` under DPO, say).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from swift_zoo._config import validate_kwargs
from swift_zoo._errors import ConfigError
from swift_zoo._registry import REGISTRY, Entry
from swift_zoo.integrations.ms_swift._bindings import BINDINGS, KWARGS_ENV, env_kwargs, unsupported_env
from swift_zoo.integrations.ms_swift._families import Family, check_route, classify
from swift_zoo.integrations.ms_swift._names import canonical, resolve

PLANS_ATTRIBUTE = "swift_zoo_loss_kwargs"


@dataclass
class LossPlan:
    """A resolved, built zoo loss and where each of its kwargs came from."""

    host_name: str
    entry: Entry
    loss: Any
    family: Family
    kwargs: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    host_terms_off: tuple[str, ...] = ()

    @property
    def reference_free(self) -> bool:
        return not any(spec.key.startswith("reference_") for spec in self.loss.inputs)

    @property
    def needs_kl(self) -> bool:
        return any(spec.key in ("kl_baseline", "policy_kl_logps") for spec in self.loss.inputs)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r} ({self.sources[k]})" for k, v in self.kwargs.items()) or "defaults"
        text = f"--loss_type {self.host_name} -> {self.entry.qualified_name} {type(self.loss).__name__}({shown})"
        if self.host_terms_off:
            text += f"; the trainer's own {', '.join(self.host_terms_off)} term is off (the loss has it)"
        return text


def normalise_rlhf_type(rlhf_type: str | None) -> str | None:
    """``simpo`` runs on ms-swift's CPO trainer (``RLHFArguments._init_simpo``)."""
    return "cpo" if rlhf_type == "simpo" else rlhf_type


def loss_kwargs(cls: type, loss_name: str, args: Any, host_name: str, rlhf_type: str | None,
                stored: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
    """``(kwargs, sources, host terms to switch off)`` for ``cls`` from ms-swift's settings and the env.

    ``stored``: what argument time found (it saw every ms-swift argument); used as it is.
    """
    if stored is not None:
        return dict(stored["kwargs"]), dict(stored["sources"]), tuple(stored["host_terms_off"])
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    kwargs: dict[str, Any] = {}
    sources: dict[str, str] = {}
    terms: list[str] = []
    for binding in BINDINGS:
        if binding.kwarg not in accepted:
            continue
        value = binding.value_for(args, loss_name, rlhf_type)
        if value is None:
            continue
        kwargs[binding.kwarg], sources[binding.kwarg] = value, binding.source
        if binding.host_term:
            terms.append(binding.host_term)
    for key, value in env_kwargs(host_name).items():
        kwargs[key], sources[key] = value, KWARGS_ENV
    return kwargs, sources, tuple(terms)


def plan_loss(host_name: str, args: Any, *, rlhf_type: str | None = None, task_type: str | None = None,
              stored: dict[str, Any] | None = None) -> LossPlan:
    """Resolve ``host_name`` (``zoo:<name>``), build the loss with validated kwargs, check its family.

    Raises :class:`swift_zoo.UnknownLossError` (with "did you mean") for an unknown name and
    :class:`swift_zoo.ConfigError` for a bad kwarg or a loss that cannot run under this trainer.
    """
    rlhf_type = normalise_rlhf_type(rlhf_type)
    host_name = canonical(host_name)
    entry = resolve("loss", host_name)
    cls = REGISTRY.load_entry(entry)
    kwargs, sources, terms = loss_kwargs(cls, entry.spec.name, args, host_name, rlhf_type, stored)
    refused = unsupported_env(entry.spec.name)
    if refused:
        message = (f"--loss_type {host_name}: {', '.join(refused)} is an ms-swift option the zoo's "
                   f"{entry.spec.name} does not implement; unset it or use ms-swift's own loss")
        raise ConfigError(message, key=refused[0].split("=")[0], expected="unset", found=refused)
    checked = validate_kwargs(f"loss {host_name!r} ({entry.qualified_name})", cls, kwargs)
    loss = cls(**checked)
    family = classify(loss.inputs)
    check_route(family, host_name, loss.inputs, rlhf_type=rlhf_type, task_type=task_type)
    return LossPlan(host_name, entry, loss, family, checked, sources, terms)


def stored_plan(plan: LossPlan) -> dict[str, Any]:
    """What travels on the training arguments from argument time to the trainer."""
    return {"kwargs": plan.kwargs, "sources": plan.sources, "host_terms_off": list(plan.host_terms_off)}
