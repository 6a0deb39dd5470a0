"""A zoo optimizer as an entry of ms-swift's ``optimizers_map`` (``--optimizer zoo:<name>``).

ms-swift builds ``optimizers_map[args.optimizer](args, trainer)`` in ``SwiftMixin.__init__``
(``swift/trainers/mixin.py:90``) and asks it for the optimizer and the LR schedule. The zoo
callback builds the optimizer with :func:`swift_zoo.build_optimizer` (role-based parameter groups:
norms and biases get no weight decay) from

* ``--learning_rate`` -> ``lr`` and ``--weight_decay`` -> ``weight_decay`` (when the optimizer takes
  them; ms-swift's default weight decay is 0.1), then
* ``--optim_args "k=v,k2=v2"`` (HF's string, as ms-swift's own GaLore and Muon read it), typed and
  validated against the optimizer's annotations (``rank=16`` becomes the int 16; an unknown key is
  an error with "did you mean"). A list value is written in brackets: ``betas=[0.9,0.99]``.

The schedule stays ms-swift's (HF's ``--lr_scheduler_type`` and warmup), and ``--max_grad_norm``
clipping is the Trainer's. An optimizer whose spec declares ``train``/``eval`` hooks (schedule-free)
gets :class:`TrainEvalModeCallback`: train mode for steps (the Trainer also calls ``train()``
every step), eval mode before evaluation and saving, and at the end of training, so the saved
weights are the averaged ones.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any, ClassVar

from swift.optimizers import OptimizerCallback
from transformers import TrainerCallback

from swift_zoo._config import build_optimizer, validate_kwargs
from swift_zoo._errors import ConfigError
from swift_zoo._registry import REGISTRY
from swift_zoo.integrations.ms_swift._log import log_once
from swift_zoo.integrations.ms_swift._names import canonical, resolve


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
        if value[:1] in "[(":
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


class TrainEvalModeCallback(TrainerCallback):
    """Switch a schedule-free optimizer to eval mode before evaluation, saving and the end of training."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.train()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_save or control.should_evaluate:
            self.optimizer.eval()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.eval()


class ZooOptimizerCallback(OptimizerCallback):
    """``optimizers_map["zoo:<name>"]``: a zoo optimizer with ms-swift's (HF's) LR schedule."""

    zoo_host_name: ClassVar[str] = ""

    def create_optimizer(self, model: Any = None) -> Any:
        name, kwargs = optimizer_kwargs(self.zoo_host_name, self.args)
        optimizer = build_optimizer(name, model if model is not None else self.trainer.model, **kwargs)
        spec = REGISTRY.resolve("optimizer", name).spec
        if {"train", "eval"} <= set(getattr(spec, "hooks", ())):
            self.trainer.add_callback(TrainEvalModeCallback(optimizer))
        log_once(f"swift zoo: --optimizer {canonical(self.zoo_host_name)} -> {type(optimizer).__name__}({kwargs})")
        return optimizer


def optimizer_class(host_name: str) -> type[ZooOptimizerCallback]:
    """The ``optimizers_map`` entry for one ``zoo:`` name."""
    return type(f"ZooOptimizerCallback[{host_name}]", (ZooOptimizerCallback,),
                {"zoo_host_name": host_name, "__module__": __name__})
