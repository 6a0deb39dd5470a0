"""``ZooSFTTrainer``: TRL's ``SFTTrainer`` with a zoo token loss, through ``compute_loss``.

TRL 1.16 deprecates ``compute_loss_func`` (``SFTTrainer.__init__`` warns; removal in 2.0) and runs an
extra forward pass for it, so this overrides ``compute_loss`` (``trl/trainer/sft_trainer.py``,
``SFTTrainer.compute_loss``) and runs one forward pass:

* a loss that reads ``logits`` (``cross_entropy``, ``dft``) gets the model's full logits and TRL's unshifted labels;
* a loss that reads ``hidden_states`` and ``lm_head_weight`` (``fused_linear_cross_entropy``) gets the
  final hidden states of the scored positions (the causal shift applied) and the LM head: the
  ``[B, T, V]`` logits are never built, which is TRL's fused-LM-head memory saving, done by the zoo's
  own chunked kernel. The forward pass asks the model for one position of logits only
  (``logits_to_keep=1``) and for its hidden states, so it still runs through ``model.forward`` (DDP's
  gradient hooks see it).

TRL's fused head itself returns only the label log-probabilities, while the zoo's token losses take
logits by contract (label smoothing and z-loss need the whole row), so it is not used.
``fused_linear_cross_entropy`` is the same formula as ``cross_entropy`` without the logits.

The unit count is the number of non-ignored shifted labels of the accumulation window over all
ranks (the loss's own declaration), applied once. Logged: the loss's metrics and TRL's ``num_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from trl import SFTConfig, SFTTrainer

from swift_zoo.integrations.trl._base import ZooTRLMixin

IGNORE_INDEX = -100


class ZooSFTTrainer(ZooTRLMixin, SFTTrainer):
    """``trl.SFTTrainer`` whose loss is a zoo token loss.

    ::

        trainer = ZooSFTTrainer(model=model, args=SFTConfig(...), train_dataset=ds, processing_class=tok,
                                zoo_config={"loss_type": "dft"})

    ``zoo_config``: ``loss_type``/``loss_kwargs`` (required), ``optimizer_type``/``optimizer_kwargs``,
    ``lr_scheduler_type``/``lr_scheduler_kwargs`` as :class:`swift_zoo.integrations.hf.ZooTrainer`.
    ``SFTConfig.label_smoothing_factor`` fills ``label_smoothing`` of ``cross_entropy``.
    """

    trl_kind: ClassVar[str] = "sft"
    trl_config_class: ClassVar[type] = SFTConfig

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = super()._refused_options(trl_args)
        if trl_args.loss_type != "nll":
            refused.append(("loss_type", trl_args.loss_type,
                            "it selects TRL's built-in loss; the zoo loss is zoo_config['loss_type']"))
        return refused

    @property
    def _zoo_reads_hidden_states(self) -> bool:
        return any(spec.key == "lm_head_weight" for spec in self.zoo_loss.inputs)

    def _zoo_units(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        labels = batch.get("labels")
        if labels is None:
            return None
        if self._zoo_reads_hidden_states:  # rows aligned with the shifted labels
            return (labels[..., 1:] != IGNORE_INDEX).sum()
        return self.zoo_loss.count_units_from_labels(labels)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        forward["use_cache"] = False
        if self._zoo_reads_hidden_states:
            outputs = model(**forward, output_hidden_states=True, logits_to_keep=1)
            aligned = labels[:, 1:]
            scored = aligned != IGNORE_INDEX
            head = self.accelerator.unwrap_model(model).get_output_embeddings()
            model_outputs = {"hidden_states": outputs.hidden_states[-1][:, :-1][scored],
                             "lm_head_weight": head.weight}
            if head.bias is not None:
                model_outputs["lm_head_bias"] = head.bias
            loss = self._zoo_loss(model_outputs, aligned[scored], num_items_in_batch=num_items_in_batch, mode=mode)
        else:
            outputs = model(**forward)
            loss = self._zoo_loss({"logits": outputs.logits}, labels, num_items_in_batch=num_items_in_batch,
                                  mode=mode)
        if mode == "train" and "attention_mask" in inputs:  # TRL's num_tokens, as SFTTrainer.compute_loss counts it
            seen = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += seen // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss
