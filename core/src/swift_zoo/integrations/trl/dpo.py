"""``ZooDPOTrainer``: TRL's ``DPOTrainer`` with a zoo pair loss, through ``compute_loss``.

``DPOTrainer`` (TRL 1.16) has no loss hook: ``compute_loss`` calls the private ``_compute_loss``
(``trl/trainer/dpo_trainer.py`` line 1285), one method with the forward passes, an if/elif over TRL's
loss types and the metrics. This overrides ``compute_loss`` and keeps TRL's data path:

* the policy forward exactly as TRL's (``fused_lm_head=True`` on the ``[chosen; rejected]`` batch, labels
  masked outside ``completion_mask``): summed completion log-probs and token counts per half;
* the reference log-probs from TRL's own ``compute_ref_log_probs`` (the reference model, or the PEFT
  base with the adapter disabled), or from the batch with ``precompute_ref_log_probs``;
* a **reference-free** loss (one that declares no ``reference_*`` input: ``simpo``, ``cpo``, ``orpo``,
  ``alphapo``) gets no reference model at all: none is loaded in ``__init__`` and no reference forward
  runs.

The unit is a pair: ``num_items_in_batch`` counts the pairs of the accumulation window over all ranks.
Logged: the loss's metrics (``rewards/*`` for the DPO family), TRL's ``logps/chosen``,
``logps/rejected`` and ``num_tokens``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from trl import DPOConfig, DPOTrainer
from trl.trainer import dpo_trainer as dpo_module

from swift_zoo.integrations.trl._base import ZooTRLMixin
from swift_zoo.integrations.trl._inputs import uses_reference
from swift_zoo.integrations.trl._reference import no_reference_model

# the batch keys DPOTrainer._compute_loss does not pass to the model
_NON_MODEL_KEYS = frozenset({"completion_mask", "ref_chosen_logps", "ref_rejected_logps"})


class ZooDPOTrainer(ZooTRLMixin, DPOTrainer):
    """``trl.DPOTrainer`` whose loss is a zoo pair loss (DPO family or reference-free).

    ::

        trainer = ZooDPOTrainer(model=model, ref_model=ref, args=DPOConfig(beta=0.1, ...), train_dataset=ds,
                                processing_class=tok, zoo_config={"loss_type": "robust_dpo",
                                                                  "loss_kwargs": {"label_smoothing": 0.1}})

    ``DPOConfig.beta`` fills every zoo ``beta``; ``label_smoothing`` fills it for ``robust_dpo``,
    ``exo_pair`` and the ``aot`` pair (TRL's sigmoid ignores it); ``discopop_tau`` fills ``tau``.
    Refused (a ``ConfigError`` at construction): ``loss_type``/``loss_weights`` other than the default
    (combine zoo losses with ``weighted_sum``), ``f_divergence_type``, ``use_weighting``, ``ld_alpha``.
    """

    trl_kind: ClassVar[str] = "dpo"
    trl_config_class: ClassVar[type] = DPOConfig

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = super()._refused_options(trl_args)
        if list(trl_args.loss_type) != ["sigmoid"] or trl_args.loss_weights:
            refused.append(("loss_type", trl_args.loss_type, "it selects TRL's built-in losses; the zoo loss is "
                            "zoo_config['loss_type'] (several: the zoo's weighted_sum)"))
        if trl_args.f_divergence_type != "reverse_kl":
            refused.append(("f_divergence_type", trl_args.f_divergence_type, "not expressed by the zoo losses"))
        if trl_args.use_weighting:
            refused.append(("use_weighting", True, "WPO weights are not applied to zoo losses"))
        if trl_args.ld_alpha is not None:
            refused.append(("ld_alpha", trl_args.ld_alpha, "LD-DPO's length-desensitised log-probs are not built"))
        if not uses_reference(self.zoo_loss):
            if trl_args.precompute_ref_log_probs:
                refused.append(("precompute_ref_log_probs", True,
                                f"{self.zoo_loss.display_name} reads no reference log-probs"))
            if trl_args.sync_ref_model:
                refused.append(("sync_ref_model", True, f"{self.zoo_loss.display_name} uses no reference model"))
        return refused

    def _construction_context(self, trl_args: Any, arguments: dict[str, Any]) -> Any:
        if uses_reference(self.zoo_loss):
            return contextlib.nullcontext()
        if arguments.get("ref_model") is not None:
            warnings.warn(f"{type(self).__name__}: ref_model is not used: {self.zoo_loss.display_name} reads no "
                          "reference log-probs", UserWarning, stacklevel=3)
            arguments["ref_model"] = None
        return no_reference_model(self, dpo_module)

    def _zoo_units(self, batch: Mapping[str, Any]) -> int | None:
        if self.zoo_loss.reduction_unit != "pair" or "input_ids" not in batch:
            return None
        return batch["input_ids"].shape[0] // 2  # [chosen; rejected]

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        mode = "train" if self.model.training else "eval"
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[..., 1:]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        # prompt-learning PEFT prepends virtual tokens; keep the real positions, as TRL does
        logps = outputs.log_probs[:, -shift_mask.size(1):].sum(dim=1)
        lengths = shift_mask.sum(dim=1)
        chosen, rejected = logps.chunk(2, dim=0)
        chosen_lengths, rejected_lengths = lengths.chunk(2, dim=0)
        model_outputs = {"policy_chosen_logps": chosen, "policy_rejected_logps": rejected,
                         "chosen_lengths": chosen_lengths, "rejected_lengths": rejected_lengths}
        if uses_reference(self.zoo_loss):
            if self.precompute_ref_logps:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_chosen, ref_rejected = self.compute_ref_log_probs(
                    self.ref_model if self.ref_model is not None else self.model, inputs)
            model_outputs["reference_chosen_logps"] = ref_chosen
            model_outputs["reference_rejected_logps"] = ref_rejected
        loss = self._zoo_loss(model_outputs, num_items_in_batch=num_items_in_batch, mode=mode)

        if "logps/chosen" not in self.zoo_loss.metrics:  # TRL's names, unless the loss records them itself
            self._store_metric(mode, "logps/chosen", self._mean_over_ranks(chosen))
            self._store_metric(mode, "logps/rejected", self._mean_over_ranks(rejected))
        if mode == "train":
            seen = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += seen // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        if return_outputs:
            with torch.no_grad():
                outputs = model(**model_kwargs)
            return loss, outputs
        return loss


