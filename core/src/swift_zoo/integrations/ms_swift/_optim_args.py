"""``--optimizer zoo:<name>`` kwargs: ``--learning_rate``, ``--weight_decay`` and ``--optim_args``, validated.

* ``--learning_rate`` -> ``lr`` and ``--weight_decay`` -> ``weight_decay`` (when the optimizer takes
  them; ms-swift's default weight decay is 0.1), then
* ``--optim_args "k=v,k2=v2"`` (HF's string, as ms-swift's own GaLore and Muon read it), typed and
  validated against the optimizer's annotations (``rank=16`` becomes the int 16; an unknown key is
  an error with "did you mean"). A list value is written in brackets: ``betas=[0.9,0.99]``.

Imports neither torch nor ms-swift (the argument check runs it before ms-swift's optimizer module).
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

from swift_zoo._config import validate_kwargs
from swift_zoo._errors import ConfigError
from swift_zoo._registry import REGISTRY
from swift_zoo.integrations.ms_swift._names import resolve


def parse_optim_args(text: str | None) -> dict[str, Any]:
    """``"rank=16,betas=[0.9,0.99]"`` -> ``{"rank": "16", "betas": [0.9, 0.99]}`` (typed later)."""
    if not text or not text.strip():
        return {}
    items, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            message = f"--optim_args must look like 'key=value,key2=value2', got {text!r} (the part {item.strip()!r})"
            raise ConfigError(message, key="optim_args", expected="key=value pairs", found=text)
        if value.startswith(("[", "(")):
            try:
                value = list(ast.literal_eval(value))
            except (ValueError, SyntaxError):
                message = f"--optim_args {key}={value}: a list must be written like [0.9,0.99]"
                raise ConfigError(message, key=key, expected="a list", found=value) from None
        parsed[key] = value
    return parsed


def optimizer_kwargs(host_name: str, args: Any) -> tuple[str, dict[str, Any]]:
    """The registry name and the validated kwargs of ``--optimizer host_name`` under ``args``."""
    entry = resolve("optimizer", host_name)
    name, cls = entry.qualified_name, REGISTRY.load_entry(entry)
    kwargs: dict[str, Any] = {}
    for key, attribute in (("lr", "learning_rate"), ("weight_decay", "weight_decay")):
        value = getattr(args, attribute, None)
        if value is not None and _takes(cls, key):
            kwargs[key] = value
    kwargs.update(parse_optim_args(getattr(args, "optim_args", None)))
    return name, validate_kwargs(f"optimizer {host_name!r} (--optim_args)", cls, kwargs, skip=1)


def _takes(cls: type, key: str) -> bool:
    parameters = inspect.signature(cls.__init__).parameters
    return key in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
