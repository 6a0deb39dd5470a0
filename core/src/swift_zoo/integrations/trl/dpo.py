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

**The DPO-family options** are ``DPOConfig`` fields TRL applies to its loss, and kwargs of every zoo DPO-family
loss; each field fills the kwarg of the same name and the trainer feeds the inputs the option reads:

* ``f_divergence_type`` / ``f_alpha_divergence_coef``: nothing more to feed (the loss scores the log-ratios);
* ``ld_alpha`` (LD-DPO): the policy's tail sums (``policy_*_tail_logps``, the tokens past each pair's common
  length, from the per-token log-probs of the fused head, as TRL splits them). TRL's ``compute_ref_log_probs``
  applies the same weighting to the reference (with ``precompute_ref_log_probs`` too, when it precomputes),
  so the reference log-probs come already length-desensitised and their tail sums are 0. An ``ld_alpha`` given
  only in ``loss_kwargs`` is copied to ``DPOConfig.ld_alpha`` so that TRL does so;
* ``use_weighting`` (WPO): ``policy_*_log_sum_sq_probs``, the completion sums of TRL's fused head output
  ``log_sum_sq_probs`` (TRL adds that output when ``DPOConfig.use_weighting`` is on; a ``use_weighting`` given
  only in ``loss_kwargs`` is copied there).

A zoo loss without the option's kwarg (``nca_pair`` has no ``f_divergence_type``, the ``aot`` pair no
``use_weighting``, reference-free losses none of them) is refused when the field is set (TRL refuses the same
combinations for its own losses, or applies the option where the zoo loss cannot).

The unit is the loss's own (a pair for the DPO family, a pair with a scored token on both sides for the
reference-free losses, a chosen token for ``sft``): ``num_items_in_batch`` is the loss's ``count_units`` over
the completion lengths of every micro-batch of the accumulation window, summed over ranks
(:mod:`._units`). Logged: the loss's metrics (``rewards/*`` for the DPO family), TRL's ``logps/chosen``,
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
from swift_zoo.integrations.trl._inputs import required_inputs, uses_reference
from swift_zoo.integrations.trl._reference import no_reference_model
from swift_zoo.integrations.trl._units import units_from_lengths
from swift_zoo.ops import ld_tail_logps

# the batch keys DPOTrainer._compute_loss does not pass to the model
_NON_MODEL_KEYS = frozenset({"completion_mask", "ref_chosen_logps", "ref_rejected_logps"})
# the inputs of the DPO-family options: LD-DPO's tail sums (by the summed log-prob they correct) and WPO's
_TAIL_KEYS = {f"{model}_{side}_logps": f"{model}_{side}_tail_logps"
              for model in ("policy", "reference") for side in ("chosen", "rejected")}
_WPO_KEYS = ("policy_chosen_log_sum_sq_probs", "policy_rejected_log_sum_sq_probs")


class ZooDPOTrainer(ZooTRLMixin, DPOTrainer):
    """``trl.DPOTrainer`` whose loss is a zoo pair loss (DPO family or reference-free).

    ::

        trainer = ZooDPOTrainer(model=model, ref_model=ref, args=DPOConfig(beta=0.1, ...), train_dataset=ds,
                                processing_class=tok, zoo_config={"loss_type": "robust_dpo",
                                                                  "loss_kwargs": {"label_smoothing": 0.1}})

    ``DPOConfig.beta`` fills every zoo ``beta``; ``label_smoothing`` fills it for ``robust_dpo``,
    ``exo_pair`` and the ``aot`` pair (TRL's sigmoid ignores it); ``discopop_tau`` fills ``tau``;
    ``f_divergence_type``, ``f_alpha_divergence_coef``, ``ld_alpha`` and ``use_weighting`` fill the DPO-family
    options of the same names. Refused (a ``ConfigError`` at construction): ``loss_type``/``loss_weights``
    other than the default (combine zoo losses with ``weighted_sum``), and an option set for a zoo loss that
    does not take it.
    """

    trl_kind: ClassVar[str] = "dpo"
    trl_config_class: ClassVar[type] = DPOConfig

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = super()._refused_options(trl_args)
        if list(trl_args.loss_type) != ["sigmoid"] or trl_args.loss_weights:
            refused.append(("loss_type", trl_args.loss_type, "it selects TRL's built-in losses; the zoo loss is "
                            "zoo_config['loss_type'] (several: the zoo's weighted_sum)"))
        if _TAIL_KEYS["reference_chosen_logps"] in required_inputs(self.zoo_loss) \
                and getattr(self.zoo_loss, "ld_alpha", None) is None:
            refused.append(("ld_alpha", trl_args.ld_alpha, f"{self.zoo_loss.display_name} reads reference tail "
                            "log-probs with no ld_alpha of its own, while TRL's compute_ref_log_probs applies "
                            "DPOConfig.ld_alpha to the reference: set ld_alpha in DPOConfig"))
        if not uses_reference(self.zoo_loss):
            if trl_args.precompute_ref_log_probs:
                refused.append(("precompute_ref_log_probs", True,
                                f"{self.zoo_loss.display_name} reads no reference log-probs"))
            if trl_args.sync_ref_model:
                refused.append(("sync_ref_model", True, f"{self.zoo_loss.display_name} uses no reference model"))
        return refused

    def _construction_context(self, trl_args: Any, arguments: dict[str, Any]) -> Any:
        # an option set only in loss_kwargs: TRL must still weight the reference (LD-DPO) and add the fused head's
        # log_sum_sq_probs output (WPO); both set and different is refused by the field mapping
        ld_alpha = getattr(self.zoo_loss, "ld_alpha", None)
        if ld_alpha is not None:
            trl_args.ld_alpha = ld_alpha
        if _WPO_KEYS[0] in required_inputs(self.zoo_loss):
            trl_args.use_weighting = True
        if uses_reference(self.zoo_loss):
            return contextlib.nullcontext()
        if arguments.get("ref_model") is not None:
            warnings.warn(f"{type(self).__name__}: ref_model is not used: {self.zoo_loss.display_name} reads no "
                          "reference log-probs", UserWarning, stacklevel=3)
            arguments["ref_model"] = None
        return no_reference_model(self, dpo_module)

    def _zoo_units(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        if "completion_mask" not in batch:
            return None
        chosen, rejected = (batch["completion_mask"][..., 1:] != 0).sum(-1).chunk(2, dim=0)  # [chosen; rejected]
        return units_from_lengths(self.zoo_loss, chosen, rejected)

    def _option_inputs(self, outputs: Any, per_token_logps: torch.Tensor, shift_mask: torch.Tensor,
                       like: torch.Tensor) -> dict[str, torch.Tensor]:
        """The inputs of the DPO-family options the loss has on (LD-DPO's tails, WPO's log-sum-sq-probs)."""
        needed = required_inputs(self.zoo_loss)
        found: dict[str, torch.Tensor] = {}
        if _TAIL_KEYS["policy_chosen_logps"] in needed:
            chosen_mask, rejected_mask = shift_mask.chunk(2, dim=0)
            chosen_tokens, rejected_tokens = per_token_logps.chunk(2, dim=0)
            tails = ld_tail_logps(chosen_tokens, chosen_mask, rejected_tokens, rejected_mask)
            for side, tail in zip(("chosen", "rejected"), tails):
                found[_TAIL_KEYS[f"policy_{side}_logps"]] = tail
                # TRL's compute_ref_log_probs applied ld_alpha to the reference already: nothing left to weight
                found[_TAIL_KEYS[f"reference_{side}_logps"]] = torch.zeros_like(tail)
        if _WPO_KEYS[0] in needed:
            log_sum_sq = outputs.log_sum_sq_probs[:, -shift_mask.size(1):].detach()
            summed = torch.where(shift_mask != 0, log_sum_sq, torch.zeros((), dtype=log_sum_sq.dtype,
                                                                          device=log_sum_sq.device)).sum(dim=1)
            found.update(zip(_WPO_KEYS, summed.to(like.dtype).chunk(2, dim=0)))
        return found

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
        per_token_logps = outputs.log_probs[:, -shift_mask.size(1):]
        logps = per_token_logps.sum(dim=1)
        lengths = shift_mask.sum(dim=1)
        chosen, rejected = logps.chunk(2, dim=0)
        chosen_lengths, rejected_lengths = lengths.chunk(2, dim=0)
        model_outputs = {"policy_chosen_logps": chosen, "policy_rejected_logps": rejected,
                         "chosen_lengths": chosen_lengths, "rejected_lengths": rejected_lengths,
                         **self._option_inputs(outputs, per_token_logps, shift_mask, logps)}
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


