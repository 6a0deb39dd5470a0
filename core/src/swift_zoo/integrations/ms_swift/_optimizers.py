"""A zoo optimizer as an entry of ms-swift's ``optimizers_map`` (``--optimizer zoo:<name>``).

ms-swift builds ``optimizers_map[args.optimizer](args, trainer)`` in ``SwiftMixin.__init__``
(``swift/trainers/mixin.py:90``) and asks it for the optimizer and the LR schedule. The zoo
callback builds the optimizer with :func:`swift_zoo.build_optimizer` (role-based parameter groups:
norms and biases get no weight decay) from ``--learning_rate``, ``--weight_decay`` and
``--optim_args`` (:mod:`swift_zoo.integrations.ms_swift._optim_args`).

The schedule stays ms-swift's (HF's ``--lr_scheduler_type`` and warmup), and ``--max_grad_norm``
clipping is the Trainer's. An optimizer whose spec declares ``train``/``eval`` hooks (schedule-free)
gets :class:`TrainEvalModeCallback`: train mode for steps (the Trainer also calls ``train()``
every step), eval mode before evaluation and saving, and at the end of training, so the saved
weights are the averaged ones.
"""

from __future__ import annotations

from typing import Any, ClassVar

from swift.optimizers import OptimizerCallback
from transformers import TrainerCallback

from swift_zoo._config import build_optimizer
from swift_zoo._registry import REGISTRY
from swift_zoo.integrations.ms_swift._log import log_once
from swift_zoo.integrations.ms_swift._names import canonical
from swift_zoo.integrations.ms_swift._optim_args import optimizer_kwargs


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
