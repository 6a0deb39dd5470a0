"""``ZooKTOTrainer``: TRL's ``KTOTrainer`` with a zoo unpaired loss, through ``compute_loss``.

``KTOTrainer`` (TRL 1.16) computes its loss in the private ``_compute_loss``
(``trl/trainer/kto_trainer.py`` line 1370). This overrides ``compute_loss`` and keeps TRL's data path:
the policy forward with the fused LM head, the mismatched-pair forward for the KL reference point
(``_compute_kl_logps``) and the reference log-probs from TRL's ``compute_ref_log_probs``.

The KL reference point is TRL's: ``mean(KL_logps - ref_KL_logps)`` over the micro-batch, averaged
over ranks, clamped at 0, detached, passed as the zoo loss's ``kl_baseline``. TRL computes the
mismatched pairs only for ``KTOConfig.loss_type == "kto"``; a zoo loss that needs no reference point
(``apo_zero_unpaired``) sets it to ``"apo_zero_unpaired"``, which skips those forwards.

The unit is a sample: ``num_items_in_batch`` counts the completions of the accumulation window over
all ranks. Logged: the loss's metrics (``kl``, ``chosen_reward``, ...) and TRL's ``num_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from trl import KTOConfig, KTOTrainer

from swift_zoo.integrations.trl._base import ZooTRLMixin

# the batch keys KTOTrainer._compute_loss does not pass to the model
_NON_MODEL_KEYS = frozenset({
    "completion_mask", "KL_input_ids", "KL_attention_mask", "KL_completion_mask", "KL_token_type_ids",
    "KL_mm_token_type_ids", "label", "ref_logps", "ref_KL_logps",
})


class ZooKTOTrainer(ZooTRLMixin, KTOTrainer):
    """``trl.KTOTrainer`` whose loss is a zoo unpaired loss (``kto``, ``apo_zero_unpaired``).

    ::

        trainer = ZooKTOTrainer(model=model, ref_model=ref, args=KTOConfig(beta=0.1, ...), train_dataset=ds,
                                processing_class=tok, zoo_config={"loss_type": "kto"})

    ``KTOConfig.beta``, ``desirable_weight`` and ``undesirable_weight`` fill the zoo kwargs of the same name.
    """

    trl_kind: ClassVar[str] = "kto"
    trl_config_class: ClassVar[type] = KTOConfig

    @property
    def _zoo_needs_kl(self) -> bool:
        return any(spec.key == "kl_baseline" for spec in self.zoo_loss.inputs)

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = super()._refused_options(trl_args)
        if self._zoo_needs_kl and trl_args.loss_type != "kto":
            refused.append(("loss_type", trl_args.loss_type, f"{self.zoo_loss.display_name} needs TRL's KL "
                            "reference point, which KTOTrainer computes for loss_type='kto' only"))
        return refused

    def _construction_context(self, trl_args: Any, arguments: dict[str, Any]) -> Any:
        if not self._zoo_needs_kl:
            trl_args.loss_type = "apo_zero_unpaired"  # KTOTrainer.__init__: no mismatched (KL) completions
        return super()._construction_context(trl_args, arguments)

    def _zoo_units(self, batch: Mapping[str, Any]) -> int | None:
        if self.zoo_loss.reduction_unit != "sample" or "input_ids" not in batch:
            return None
        return batch["input_ids"].shape[0]

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        mode = "train" if self.model.training else "eval"
        batch = {k: (v.to(self.accelerator.device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
        model_kwargs = {k: v for k, v in batch.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        logps = outputs.log_probs[:, -(batch["input_ids"].size(1) - 1):].sum(-1)
        desirable = torch.as_tensor(batch["label"], dtype=torch.bool, device=logps.device)
        if self.precompute_ref_logps:
            ref_logps, ref_kl_logps = batch["ref_logps"], batch.get("ref_KL_logps")
        else:
            ref_logps, ref_kl_logps = self.compute_ref_log_probs(
                self.ref_model if self.ref_model is not None else self.model, batch)
        model_outputs = {"policy_logps": logps, "reference_logps": ref_logps, "is_desirable": desirable}
        if self._zoo_needs_kl:
            kl_logps = self._compute_kl_logps(model, batch)  # no grad, as TRL
            kl = (kl_logps - ref_kl_logps).mean().detach()
            kl = self.accelerator.gather_for_metrics(kl).mean().clamp(min=0)
            model_outputs["kl_baseline"] = kl.expand(logps.shape[0])
        loss = self._zoo_loss(model_outputs, num_items_in_batch=num_items_in_batch, mode=mode)
        if mode == "train":
            seen = self.accelerator.gather_for_metrics(batch["attention_mask"].sum()).sum().item()
            self._total_train_tokens += seen // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        if return_outputs:
            with torch.no_grad():
                outputs = model(**model_kwargs)
            return loss, outputs
        return loss
