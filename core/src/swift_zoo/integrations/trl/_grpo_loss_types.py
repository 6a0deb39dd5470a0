"""``GRPOConfig.loss_type`` to the zoo loss of the same meaning, read from the losses' declared equivalents.

Each zoo policy loss declares the TRL spelling it equals (:attr:`swift_zoo.BaseLoss.equivalents`, compared
against TRL in ``tests_references/losses``): ``GRPOConfig(loss_type='grpo')`` for ``grpo``,
``GRPOConfig(loss_type='grpo', importance_sampling_level='sequence')`` for ``gspo``... A ``ZooGRPOTrainer``
whose ``zoo_config`` names no loss takes the one whose *equal* record spells the config's ``loss_type`` and
``importance_sampling_level`` (an omitted level is TRL's default, ``"token"``); a named loss must agree with a
``loss_type`` / level set away from TRL's defaults. Only records spelling exactly these two fields count:
the other fields are mapped onto the loss's kwargs (:mod:`._fields`).

Imports neither torch nor TRL itself; it imports the registered loss classes to read their records.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

from swift_zoo._errors import ConfigError
from swift_zoo._registry import REGISTRY, list_losses

TRL_DEFAULT_LEVEL = "token"  # GRPOConfig.importance_sampling_level's default
_SPELLED = {"loss_type", "importance_sampling_level"}


def grpo_setting(record: Any) -> tuple[str, str] | None:
    """``(loss_type, importance_sampling_level)`` of an equal TRL record spelled ``GRPOConfig(...)`` with only
    those fields; ``None`` for any other record."""
    if record.library != "trl" or not record.equal:
        return None
    try:
        node = ast.parse(record.name, mode="eval").body
        if not isinstance(node, ast.Call) or ast.unparse(node.func) != "GRPOConfig" or node.args:
            return None
        spelled = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    except (SyntaxError, ValueError):
        return None
    if "loss_type" not in spelled or set(spelled) - _SPELLED:
        return None
    return spelled["loss_type"], spelled.get("importance_sampling_level", TRL_DEFAULT_LEVEL)


def declared_grpo_settings(loss_classes: Iterable[tuple[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """``{(loss_type, level): [zoo loss names]}`` from ``(name, loss class)`` pairs."""
    found: dict[tuple[str, str], list[str]] = {}
    for name, loss_cls in loss_classes:
        for record in getattr(loss_cls, "equivalents", ()):
            setting = grpo_setting(record)
            if setting is not None and name not in found.setdefault(setting, []):
                found[setting].append(name)
    return found


def _registered_losses() -> tuple[list[tuple[str, Any]], list[str]]:
    """Every registered loss that loads, by the name that designates it; and those that did not load."""
    entries = list_losses()
    bare_counts: dict[str, int] = {}
    for entry in entries:
        bare_counts[entry.name] = bare_counts.get(entry.name, 0) + 1
    loaded, failed = [], []
    for entry in entries:
        name = entry.name if bare_counts[entry.name] == 1 else entry.qualified_name
        try:
            loaded.append((name, REGISTRY.load_entry(entry)))
        except Exception:  # a broken plugin: reported by name in the message below, if nothing matched
            failed.append(entry.qualified_name)
    return loaded, failed


def spelled(loss_type: str, level: str) -> str:
    """How TRL spells the setting, as the equivalents records do."""
    extra = "" if level == TRL_DEFAULT_LEVEL else f", importance_sampling_level={level!r}"
    return f"GRPOConfig(loss_type={loss_type!r}{extra})"


def zoo_loss_for_grpo(owner: str, loss_type: str, level: str) -> str:
    """The zoo loss name declared equal to TRL's ``loss_type`` at ``level``.

    :raises ConfigError: no registered loss declares it (naming the settings that have one), or several do.
    """
    classes, failed = _registered_losses()
    settings = declared_grpo_settings(classes)
    names = settings.get((loss_type, level), [])
    if len(names) == 1:
        return names[0]
    setting = spelled(loss_type, level)
    if names:
        message = (
            f"{owner}: several zoo losses declare they equal TRL's {setting}: {', '.join(names)}; name one in "
            "zoo_config['loss_type']"
        )
        raise ConfigError(message, key="loss_type", expected="one zoo loss", found=names)
    known = "; ".join(f"{spelled(*key)} -> {', '.join(value)}" for key, value in sorted(settings.items()))
    broken = f" ({len(failed)} registered losses did not load: {', '.join(failed)})" if failed else ""
    message = (
        f"{owner}: no zoo loss declares it equals TRL's {setting}{broken}; TRL's settings with a zoo equal: "
        f"{known}. Name a zoo loss in zoo_config['loss_type'] (and leave GRPOConfig.loss_type / "
        "importance_sampling_level at their defaults)"
    )
    raise ConfigError(message, key="loss_type", expected="a TRL loss_type with a declared zoo equal", found=setting)
