"""swift zoo inside ``transformers.Trainer``: a zoo loss as ``compute_loss_func``, a zoo optimizer and LR
schedule through the Trainer's own ``create_optimizer`` / ``create_scheduler`` hooks.

``num_items_in_batch`` is handled exactly once:

* the count comes from the zoo loss's own declarations (``BaseLoss.count_units_from_labels``: for a
  causal token loss, the non-ignored *shifted* labels) summed over the accumulation window and, with
  ``average_tokens_across_devices``, over ranks -- not from the Trainer's guess, which depends on
  whether it recognises the model as a causal LM;
* the loss divides by it once (the Trainer does not divide a ``compute_loss_func`` loss by the
  gradient-accumulation steps);
* a loss whose units cannot be counted from labels (pairs, sequences) gets ``None`` and the adapter
  divides its local mean by the accumulation steps itself, which is the Trainer's usual behaviour.

Whether the model "accepts loss kwargs" does not matter: labels are popped before the forward pass,
so the model computes no loss of its own.

::

    from swift_zoo.integrations.hf import ZooTrainer
    trainer = ZooTrainer(model=model, args=args, train_dataset=ds,
                         zoo_config={"loss_type": "cross_entropy", "optimizer_type": "muon",
                                     "optimizer_kwargs": {"lr": 0.02}, "lr_scheduler_type": "cosine"})
    trainer.train()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

try:
    import transformers
except ModuleNotFoundError as exc:  # the optional extra is not installed
    message = (
        f"swift_zoo.integrations.hf needs transformers and accelerate ({exc.name!r} is not installed): "
        'pip install -c constraints.txt "swift-zoo-core[hf]" (or ./core[hf] from a clone)'
    )
    raise ModuleNotFoundError(message, name=exc.name) from exc

from swift_zoo._config import (
    build_loss,
    build_optimizer,
    build_scheduler,
    check_training_args,
    load_config,
    set_nonfinite_policy,
)
from swift_zoo._errors import ConfigError

#: ``training_args`` keys swift zoo reads elsewhere that the HF Trainer takes from its own ``TrainingArguments``.
TRAINER_OWNED = ("learning_rate", "max_grad_norm", "max_steps")


class ZooLossFunction:
    """A zoo loss as a ``compute_loss_func(outputs, labels, num_items_in_batch=None)``."""

    def __init__(self, loss: torch.nn.Module, trainer: transformers.Trainer | None = None) -> None:
        self.loss = loss
        self.trainer = trainer

    def __call__(self, outputs: Mapping[str, torch.Tensor], labels: torch.Tensor | None = None,
                 num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        if num_items_in_batch is not None:
            return self.loss(outputs, labels, num_items_in_batch=num_items_in_batch)
        value = self.loss(outputs, labels)
        steps = getattr(self.trainer, "current_gradient_accumulation_steps", 1) if self.trainer is not None else 1
        if self.trainer is not None and self.trainer.model.training and steps > 1:
            value = value / steps
        return value


def read_zoo_config(zoo_config: Mapping[str, Any] | str | None, *, owner: str = "ZooTrainer") -> dict[str, Any]:
    """The ``training_args`` section of a zoo config (a mapping or a YAML path); ``{}`` for ``None``.

    A typo of a known key (``loss_kwarg``) is a :class:`~swift_zoo.ConfigError` with a did-you-mean, and so is a
    key the Trainer reads from its own ``TrainingArguments`` (:data:`TRAINER_OWNED`), which would be ignored here.
    """
    config = load_config(zoo_config) if zoo_config is not None else {}
    section = dict(config.get("training_args", config))
    check_training_args(section)
    ignored = sorted(set(section) & set(TRAINER_OWNED))
    if ignored:
        message = (
            f"{owner}: zoo_config.{ignored[0]} would be ignored: the Trainer reads it from TrainingArguments "
            f"({', '.join(TRAINER_OWNED)} go there; zoo_config takes the loss, optimizer and schedule)"
        )
        raise ConfigError(message, key=ignored[0], expected="a TrainingArguments field", found=ignored[0])
    return section


class ZooComponentsMixin:
    """``create_optimizer`` / ``create_scheduler`` from ``self.zoo_config`` (``optimizer_type``/``optimizer_kwargs``,
    ``lr_scheduler_type``/``lr_scheduler_kwargs``), for any ``transformers.Trainer`` subclass placed after it.
    A key left out falls back to the Trainer's own optimizer or schedule."""

    zoo_config: dict[str, Any]

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        name = self.zoo_config.get("optimizer_type")
        if not name:
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        if self.optimizer is None:
            kwargs = dict(self.zoo_config.get("optimizer_kwargs") or {})
            kwargs.setdefault("lr", self.args.learning_rate)
            self.optimizer = build_optimizer(name, model or self.model, **kwargs)
            if self.zoo_config.get("nonfinite_grads") is not None:
                set_nonfinite_policy(self.optimizer, self.zoo_config["nonfinite_grads"])
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> Any:
        name = self.zoo_config.get("lr_scheduler_type")
        if not name:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            kwargs = dict(self.zoo_config.get("lr_scheduler_kwargs") or {})
            kwargs.setdefault("num_training_steps", num_training_steps)
            if "warmup_steps" not in kwargs and self.args.warmup_steps:
                kwargs["warmup_steps"] = self.args.warmup_steps
            self.lr_scheduler = build_scheduler(name, optimizer or self.optimizer, **kwargs)
            self._created_lr_scheduler = True
        return self.lr_scheduler


class ZooTrainer(ZooComponentsMixin, transformers.Trainer):
    """``transformers.Trainer`` with a zoo loss, optimizer and schedule.

    :param zoo_config: ``training_args``-style mapping (or YAML path) with ``loss_type``/``loss_kwargs``,
        ``optimizer_type``/``optimizer_kwargs``, ``lr_scheduler_type``/``lr_scheduler_kwargs`` and
        ``nonfinite_grads``. Any key left out falls back to the Trainer's own behaviour (its default loss,
        AdamW, linear schedule). A typo of a key, or ``learning_rate`` / ``max_grad_norm`` / ``max_steps``
        (the Trainer reads those from ``TrainingArguments``), is a :class:`~swift_zoo.ConfigError`.
    :param zoo_loss: a built loss instead of ``loss_type``.
    """

    def __init__(self, *args: Any, zoo_config: Mapping[str, Any] | str | None = None,
                 zoo_loss: torch.nn.Module | None = None, **kwargs: Any) -> None:
        self.zoo_config = read_zoo_config(zoo_config, owner="ZooTrainer")
        if zoo_loss is None and self.zoo_config.get("loss_type"):
            zoo_loss = build_loss(self.zoo_config["loss_type"], **(self.zoo_config.get("loss_kwargs") or {}))
        if zoo_loss is not None and kwargs.get("compute_loss_func") is not None:
            message = "ZooTrainer: pass either a zoo loss or compute_loss_func, not both"
            raise ConfigError(message, key="compute_loss_func", expected="one loss", found="two")
        self.zoo_loss = zoo_loss
        if zoo_loss is not None:
            kwargs["compute_loss_func"] = ZooLossFunction(zoo_loss)
        super().__init__(*args, **kwargs)
        if zoo_loss is not None:
            self.compute_loss_func.trainer = self

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | int | None:
        if self.zoo_loss is None:
            return super()._get_num_items_in_batch(batch_samples, device)
        counts = []
        for batch in batch_samples:
            labels = batch.get("labels") if isinstance(batch, Mapping) else None
            count = self.zoo_loss.count_units_from_labels(labels) if labels is not None else None
            if count is None:
                return None
            counts.append(count)
        total = torch.stack([torch.as_tensor(c) for c in counts]).sum().to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            total = self.accelerator.gather(total).sum()
        return total
