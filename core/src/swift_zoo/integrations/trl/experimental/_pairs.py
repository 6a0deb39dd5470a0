"""``ZooPairBatchMixin``: what ``ZooCPOTrainer`` and ``ZooORPOTrainer`` share.

TRL 1.16 keeps ``CPOTrainer`` and ``ORPOTrainer`` in ``trl.experimental`` with the layout of the DPO trainer
of TRL 0.x: a row is tokenised into ``prompt_*``, ``chosen_*`` and ``rejected_*`` (labels ``-100`` over the
prompt), ``concatenated_inputs`` stacks ``[chosen; rejected]``, ``get_batch_logps`` sums the label log-probs
of full logits, ``get_batch_loss_metrics(model, batch, train_eval)`` builds the loss and ``store_metrics`` /
``log`` average the metrics. This keeps that data path and replaces the loss:

* one forward pass on ``[chosen; rejected]`` exactly as TRL's ``concatenated_forward`` runs it; the summed
  completion log-probs (TRL's ``get_batch_logps`` with ``average_log_prob=False``) and the completion token
  counts go to the zoo loss as ``policy_chosen_logps``, ``policy_rejected_logps``, ``chosen_lengths``,
  ``rejected_lengths``: a length-normalised loss (``simpo``, ``orpo``, CPO's ``ipo``) normalises itself;
* the unit is a pair with a scored token on both sides (the zoo's counted pair), counted from the labels of
  every micro-batch of the accumulation window and summed over ranks (:class:`~swift_zoo.integrations.trl._base.ZooTRLMixin`);
* the loss's metrics go to TRL's ``_stored_metrics`` (``eval_``-prefixed in evaluation, as TRL names them),
  with TRL's ``logps/chosen`` and ``logps/rejected`` (summed log-probs, mean over every pair of every rank).

Refused: a model with ``output_router_logits`` (TRL adds the MoE auxiliary loss, the zoo loss does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch

from swift_zoo._errors import ConfigError
from swift_zoo.integrations.trl._base import ZooTRLMixin

IGNORE_INDEX = -100


class ZooPairBatchMixin(ZooTRLMixin):
    """Placed before ``CPOTrainer`` / ``ORPOTrainer``; a subclass names the padding value TRL concatenates with."""

    @property
    def _zoo_padding_value(self) -> int:
        raise NotImplementedError

    def _zoo_after_init(self) -> None:
        if self.aux_loss_enabled:
            owner = type(self).__name__
            message = (f"{owner}: the model returns router logits (config.output_router_logits=True), and TRL would "
                       "add the MoE auxiliary loss, which is not added to zoo losses; set it to False")
            raise ConfigError(message, key="output_router_logits", expected=False, found=True)
        super()._zoo_after_init()

    # ------------------------------------------------------------ normalisation
    def _scored(self, labels: torch.Tensor) -> torch.Tensor:
        """Which label positions ``get_batch_logps`` scores (shifted by one for a decoder-only model)."""
        return (labels if self.is_encoder_decoder else labels[:, 1:]) != IGNORE_INDEX

    def _zoo_units(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        if self.zoo_loss.reduction_unit != "pair" or "chosen_labels" not in batch:
            return None
        return (self._scored(batch["chosen_labels"]).any(-1) & self._scored(batch["rejected_labels"]).any(-1)).sum()

    # -------------------------------------------------------------------- loss
    def _zoo_pair_outputs(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """TRL's ``concatenated_forward`` up to the log-probs: summed per completion, with the token counts."""
        concatenated = self.concatenated_inputs(batch, is_encoder_decoder=self.is_encoder_decoder,
                                                padding_value=self._zoo_padding_value, device=self.accelerator.device)
        labels = concatenated["concatenated_labels"]
        lengths = self._scored(labels).sum(-1)  # before get_batch_logps, which overwrites encoder-decoder labels
        model_kwargs = {"decoder_input_ids": self._shift_right(labels)} if self.is_encoder_decoder else {}
        outputs = model(concatenated["concatenated_input_ids"],
                        attention_mask=concatenated["concatenated_attention_mask"], use_cache=False, **model_kwargs)
        logps = self.get_batch_logps(outputs.logits, labels, average_log_prob=False,
                                     is_encoder_decoder=self.is_encoder_decoder)
        pairs = batch["chosen_labels"].shape[0]
        return {"policy_chosen_logps": logps[:pairs], "policy_rejected_logps": logps[pairs:],
                "chosen_lengths": lengths[:pairs], "rejected_lengths": lengths[pairs:],
                "logits": outputs.logits}

    def get_batch_loss_metrics(self, model: torch.nn.Module, batch: Mapping[str, Any], train_eval: str = "train",
                               num_items_in_batch: torch.Tensor | int | None = None) -> tuple[torch.Tensor, dict]:
        """The zoo loss on one micro-batch; the returned dict holds only what TRL's ``prediction_step`` reads
        (the loss's own metrics are stored already)."""
        model_outputs = self._zoo_pair_outputs(model, batch)
        logits = model_outputs.pop("logits")
        loss = self._zoo_loss(model_outputs, num_items_in_batch=num_items_in_batch, mode=train_eval)
        if "logps/chosen" not in self.zoo_loss.metrics:
            self._store_metric(train_eval, "logps/chosen", self._mean_over_ranks(model_outputs["policy_chosen_logps"]))
            self._store_metric(train_eval, "logps/rejected",
                               self._mean_over_ranks(model_outputs["policy_rejected_logps"]))
        if train_eval == "train":
            return loss, {}
        pairs = model_outputs["policy_chosen_logps"].shape[0]
        return loss, {"eval_logits/chosen": self._mean_over_ranks(logits[:pairs].detach().mean()),
                      "eval_logits/rejected": self._mean_over_ranks(logits[pairs:].detach().mean())}

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        autocast = (torch.autocast(self.accelerator.device.type) if self._peft_has_been_casted_to_bf16
                    else nullcontext())  # as TRL's compute_loss
        with autocast:
            loss, metrics = self.get_batch_loss_metrics(model, inputs, "train", num_items_in_batch=num_items_in_batch)
        return (loss, metrics) if return_outputs else loss

    def _store_metric(self, mode: str, key: str, value: float) -> None:
        self._stored_metrics[mode][f"eval_{key}" if mode == "eval" else key].append(value)
