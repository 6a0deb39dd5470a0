"""``ZooTRLMixin``: what every zoo TRL trainer shares.

* **Construction.** ``zoo_config`` is read as :class:`swift_zoo.integrations.hf.ZooTrainer` reads it;
  the loss is built from ``loss_type`` with the TRL config fields of the same meaning
  (:mod:`._fields`) under ``loss_kwargs``; its declared inputs are checked against what the trainer
  supplies (:mod:`._inputs`), so an unknown name or an unusable loss fails before any model work.
  ``optimizer_type`` / ``lr_scheduler_type`` go through :class:`~swift_zoo.integrations.hf.ZooComponentsMixin`.
* **Normalisation, once.** ``loss_is_scaled_for_ga = True``: the Trainer never divides our loss by the
  accumulation steps. :meth:`_get_num_items_in_batch` counts the loss's reduction units (tokens,
  pairs, samples) in every micro-batch of the accumulation window before the first forward pass,
  sums them over ranks, and the loss divides its per-unit sum by that count; the loss is multiplied by
  the number of processes because DDP averages gradients. The micro-batch losses of a window then add
  up to the window's loss, and the gradient is the full-batch gradient, whatever the split. Without a
  count (evaluation, a unit the trainer cannot count) the loss is the local mean, divided by the
  accumulation steps in training.
* **Metrics.** The loss's ``metrics`` go, averaged over ranks, into TRL's own ``self._metrics[mode]``
  (:meth:`_store_metric`), which TRL's ``log`` averages per logging step into ``state.log_history``. A
  loss metric is a mean over one rank's micro-batch, so with ranks holding different numbers of units
  its rank average is not the mean over all units (the loss and gradient are exact; the metrics are
  diagnostics).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_zoo._config import build_loss
from swift_zoo._errors import ConfigError
from swift_zoo._registry import get_loss
from swift_zoo.integrations.hf import ZooComponentsMixin, read_zoo_config
from swift_zoo.integrations.trl._fields import loss_kwargs_from_config
from swift_zoo.integrations.trl._inputs import check_supplied


class ZooTRLMixin(ZooComponentsMixin):
    """Placed before a TRL trainer class: ``class ZooDPOTrainer(ZooTRLMixin, DPOTrainer)``.

    A subclass sets ``trl_kind`` (``"sft"``, ``"dpo"``, ``"kto"``, ``"grpo"``; ``"cpo"``, ``"orpo"`` in
    :mod:`.experimental`), ``trl_config_class`` and
    implements :meth:`_zoo_units` (the units of the loss in one collated batch, or ``None``).
    """

    trl_kind: ClassVar[str] = ""
    trl_config_class: ClassVar[type] = object
    loss_is_scaled_for_ga = True

    zoo_loss: torch.nn.Module

    def __init__(self, *args: Any, zoo_config: Mapping[str, Any] | str | None = None,
                 zoo_loss: torch.nn.Module | None = None, **kwargs: Any) -> None:
        host = next(c for c in type(self).__mro__ if c.__module__.startswith("trl."))
        bound = inspect.signature(host.__init__).bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("self")
        if arguments.get("args") is None:  # what the TRL trainer would build, made here so the loss can read it
            model = arguments.get("model")
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "") or "model"
            arguments["args"] = self.trl_config_class(f"{name.split('/')[-1]}-{self.trl_kind.upper()}")
        trl_args = arguments["args"]
        self.zoo_config = read_zoo_config(zoo_config, owner=type(self).__name__)
        self.zoo_loss = self._build_zoo_loss(trl_args, zoo_loss)
        check_supplied(self.trl_kind, self.zoo_loss)
        self._check_trl_options(trl_args)
        with self._construction_context(trl_args, arguments):
            super().__init__(**arguments)
        self._zoo_after_init()

    # ------------------------------------------------------------- construction
    def _build_zoo_loss(self, trl_args: Any, zoo_loss: torch.nn.Module | None) -> torch.nn.Module:
        owner = type(self).__name__
        if zoo_loss is not None:
            if self.zoo_config.get("loss_type"):
                message = f"{owner}: pass either zoo_loss or zoo_config['loss_type'], not both"
                raise ConfigError(message, key="loss_type", expected="one loss", found="two")
            return zoo_loss
        name = self.zoo_config.get("loss_type")
        if not name:
            found = ", ".join(sorted(self.zoo_config)) or "none"
            message = f"{owner}: zoo_config needs a 'loss_type' (a zoo loss name); keys found: {found}"
            raise ConfigError(message, key="loss_type", expected="a zoo loss name", found=None)
        loss_cls = get_loss(name)  # UnknownLossError, with close matches and the available names
        if loss_cls.inputs:  # declared on the class: check before the TRL fields reach its constructor
            check_supplied(self.trl_kind, loss_cls)
        kwargs = loss_kwargs_from_config(self.trl_kind, owner, loss_cls, trl_args,
                                         self.zoo_config.get("loss_kwargs") or {})
        return build_loss(loss_cls, **kwargs)

    def _check_trl_options(self, trl_args: Any) -> None:
        """Refuse TRL options that change the loss outside the zoo loss (a subclass extends it)."""
        refused = self._refused_options(trl_args)
        if refused:
            owner = type(self).__name__
            listed = "; ".join(f"{field}={value!r} ({why})" for field, value, why in refused)
            message = f"{owner}: these {type(trl_args).__name__} options are not supported with a zoo loss: {listed}"
            raise ConfigError(message, key=refused[0][0], expected="the TRL default", found=refused[0][1])

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = []
        if getattr(trl_args, "router_aux_loss_coef", None):
            refused.append(("router_aux_loss_coef", trl_args.router_aux_loss_coef,
                            "the MoE auxiliary loss is not added to zoo losses"))
        return refused

    def _construction_context(self, trl_args: Any, arguments: dict[str, Any]) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def _zoo_after_init(self) -> None:
        self.zoo_loss.to(self.accelerator.device)

    # ------------------------------------------------------------ normalisation
    def _zoo_units(self, batch: Mapping[str, Any]) -> torch.Tensor | int | None:
        """The loss's reduction units in one collated batch, before any forward pass; ``None``: cannot count."""
        return None

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        counts = []
        for batch in batch_samples:
            count = self._zoo_units(batch) if isinstance(batch, Mapping) else None
            if count is None:
                return None
            counts.append(torch.as_tensor(count))
        if not counts:
            return None
        return self._sum_over_ranks(torch.stack(counts).sum().to(device))

    def _sum_over_ranks(self, count: torch.Tensor) -> torch.Tensor:
        if self._zoo_gathers():
            count = self.accelerator.gather(count.reshape(1)).sum()
        return count

    def _zoo_gathers(self) -> bool:
        return bool(self.args.average_tokens_across_devices) and self.accelerator.num_processes > 1

    def _zoo_loss(self, model_outputs: Mapping[str, torch.Tensor], labels: torch.Tensor | None = None, *,
                  num_items_in_batch: torch.Tensor | int | None, mode: str) -> torch.Tensor:
        """Call the zoo loss with the window's unit count, once; log its metrics."""
        if num_items_in_batch is not None and mode == "train":
            loss = self.zoo_loss(model_outputs, labels, num_items_in_batch=num_items_in_batch)
            if self._zoo_gathers():
                loss = loss * self.accelerator.num_processes  # DDP averages the gradients over ranks
        else:
            loss = self.zoo_loss(model_outputs, labels)
            if mode == "train":
                loss = loss / self.current_gradient_accumulation_steps
        self._log_zoo_metrics(mode)
        return loss

    def _log_zoo_metrics(self, mode: str) -> None:
        metrics = self.zoo_loss.metrics
        if not metrics:
            return
        keys = sorted(metrics)
        values = torch.stack([metrics[k].detach().float().reshape(()) for k in keys]).to(self.accelerator.device)
        values = self.accelerator.gather(values.unsqueeze(0)).mean(0)
        for key, value in zip(keys, values.tolist()):
            self._store_metric(mode, key, value)

    def _store_metric(self, mode: str, key: str, value: float) -> None:
        """Where the TRL trainer keeps a metric until its ``log`` averages it (``self._metrics`` in TRL 1.16's
        trainers; a subclass for another store)."""
        self._metrics[mode][key].append(value)

    def _mean_over_ranks(self, values: torch.Tensor) -> float:
        """The mean of ``values`` over every element of every rank, also when ranks hold different numbers."""
        totals = torch.stack([values.detach().float().sum(), torch.tensor(float(values.numel()), device=values.device)])
        totals = self.accelerator.reduce(totals, reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()
