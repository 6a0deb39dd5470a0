"""A zoo loss as an entry of ms-swift's ``loss_map`` (``swift sft`` / ``swift pt``, any task type).

ms-swift builds ``loss_map[args.loss_type](args, trainer)`` once per trainer
(``swift/trainers/mixin.py:1115``) and hands it to ``transformers.Trainer`` as ``compute_loss_func``;
``Seq2SeqTrainer.compute_loss`` (``seq2seq_trainer.py:213``) then calls it with the model outputs,
the popped *unshifted* labels, ``num_items_in_batch`` (the non-ignored shifted labels of the whole
accumulation window, all ranks when ``average_tokens_across_devices``) and ``loss_scale``. The
Trainer does not divide such a loss by the accumulation steps, so:

* **token losses** divide once by ``num_items_in_batch`` (:class:`swift_zoo.integrations.hf.ZooLossFunction`),
  exactly like ms-swift's own ``cross_entropy``; ``loss_scale`` (ms-swift's per-token weights,
  already rolled by -1) multiplies the per-token losses before that one division, as ms-swift does;
* **embedding and reranker losses** return their local mean and leave the accumulation scaling
  to ms-swift's trainer (``Trainer.compute_loss`` divides by the accumulation steps), exactly like
  ms-swift's own losses of those families; ``num_items_in_batch`` counts tokens there and is unused.

After each call the zoo loss's metrics are logged as ``zoo/<name>`` through the trainer's
``custom_metrics``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from swift.loss import BaseLoss as SwiftBaseLoss

from swift_zoo._errors import ConfigError, LossInputError
from swift_zoo.integrations.hf import ZooLossFunction
from swift_zoo.integrations.ms_swift._log import log_once
from swift_zoo.integrations.ms_swift._metrics import report_metrics
from swift_zoo.integrations.ms_swift._outputs import ADAPTERS
from swift_zoo.integrations.ms_swift._plan import PLANS_ATTRIBUTE, plan_loss
from swift_zoo.losses import UnitLosses


class ZooSwiftLoss(SwiftBaseLoss):
    """``loss_map["zoo:<name>"]``: builds the zoo loss for the trainer and adapts ms-swift's outputs to it."""

    zoo_host_name: ClassVar[str] = ""

    def __init__(self, args: Any, trainer: Any) -> None:
        super().__init__(args, trainer)
        name = self.zoo_host_name
        if self.is_megatron:
            message = f"--loss_type {name}: zoo losses are wired into ms-swift's HF trainers, not Megatron's"
            raise ConfigError(message, key="loss_type", expected="swift sft/pt", found="megatron")
        task_type = getattr(trainer, "task_type", None) or getattr(args, "task_type", None)
        stored = (getattr(args, PLANS_ATTRIBUTE, None) or {}).get(name)
        self.plan = plan_loss(name, args, task_type=task_type, stored=stored)
        self.zoo_loss = self.plan.loss
        self.inputs_for = ADAPTERS[self.plan.family.name]
        self.token_loss = ZooLossFunction(self.zoo_loss, trainer) if self.plan.family.name == "token" else None
        log_once(f"swift zoo: {self.plan.describe()}")

    def __call__(self, outputs: Any, labels: torch.Tensor, *, num_items_in_batch: Any = None,
                 loss_scale: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        model_outputs, zoo_labels = self.inputs_for(outputs, labels)
        if self.trainer is not None:
            self.zoo_loss.train(self.trainer.model.training)
        if self.token_loss is None:
            value = self.zoo_loss(model_outputs, zoo_labels)
        elif loss_scale is None:
            value = self.token_loss(model_outputs, zoo_labels, num_items_in_batch=num_items_in_batch)
        else:
            value = self.weighted_token_loss(model_outputs, zoo_labels, loss_scale, num_items_in_batch)
        if self.trainer is not None:
            report_metrics(self.trainer, self.zoo_loss)
        return value

    def weighted_token_loss(self, model_outputs: dict[str, torch.Tensor], labels: torch.Tensor,
                            loss_scale: torch.Tensor, num_items_in_batch: Any) -> torch.Tensor:
        """``sum_t w_t * l_t / N``: ms-swift's per-token ``loss_scale`` on the zoo's per-token losses."""
        loss = self.zoo_loss
        inputs = loss.validate(model_outputs, labels)
        denominator = loss._check_num_items(num_items_in_batch)
        units = loss.per_unit_loss(inputs)
        if loss_scale.numel() != units.losses.numel():
            message = (
                f"{loss.display_name}: loss_scale has {loss_scale.numel()} weights for per-token losses of "
                f"shape {tuple(units.losses.shape)}; expected one weight per token"
            )
            raise LossInputError(message)
        weights = loss_scale.reshape(units.losses.shape).to(units.losses)
        value = loss.reduce(UnitLosses(units.losses * weights, units.mask), denominator)
        if denominator is None and self.trainer is not None and self.trainer.model.training:
            value = value / getattr(self.trainer, "current_gradient_accumulation_steps", 1)
        return value


def loss_class(host_name: str) -> type[ZooSwiftLoss]:
    """The ``loss_map`` entry for one ``zoo:`` name."""
    return type(f"ZooSwiftLoss[{host_name}]", (ZooSwiftLoss,), {"zoo_host_name": host_name,
                                                               "__module__": __name__})
