"""``ZooGRPOTrainer``: TRL's ``GRPOTrainer`` with a zoo policy loss, through ``_compute_loss``.

``GRPOTrainer`` (TRL 1.16) calls the private ``_compute_loss(model, inputs)``
(``trl/trainer/grpo_trainer.py`` line 3020) on one micro-batch of its buffered generation batch. This
overrides it: the per-token log-probs and entropies from TRL's ``_get_per_token_logps_and_entropies``,
then the zoo loss on ``per_token_logps``, ``old_per_token_logps`` (when TRL has them: off-policy steps),
``ref_per_token_logps`` (when ``beta > 0``), ``advantages`` and the completion mask (tool-output tokens
masked, as TRL).

**Normalisation.** ``GRPOTrainer.loss_is_scaled_for_ga = True`` already. TRL normalises per micro-batch
and divides by the accumulation steps (``grpo``, ``bnpo``, ``dr_grpo``), or rescales the generation
batch's token count by ``gradient_accumulation_steps / steps_per_generation`` (``dapo``, ``cispo``), which
is the window's count only when every window holds the same number of tokens. Here the unit count is
exact: at the first micro-step of each accumulation window the trainer counts the units (completion
tokens for a token loss, completions with a token for a sequence loss) of the window's buffered
micro-batches, sums them over ranks, and every micro-step of the window divides by it (times the
number of processes, which DDP divides back out). That needs each window inside one generation
batch: ``steps_per_generation * num_iterations`` a multiple of ``gradient_accumulation_steps``
(checked at construction; TRL's default ``steps_per_generation = gradient_accumulation_steps`` is).

**KL.** ``GRPOConfig.beta`` fills the zoo ``beta`` (and a ``beta`` given only in ``loss_kwargs`` is
copied to ``GRPOConfig.beta``, which makes TRL load the reference model and compute
``ref_per_token_logps``); ``use_bias_correction_kl`` (TRL's default ``True``) fills the zoo option of the same name: the
KL term multiplied by the differentiable importance ratio, which changes the gradient even on-policy.

Refused (``ConfigError`` at construction): ``GRPOConfig.loss_type`` other than its default, a sequence
``importance_sampling_level`` (use the zoo's ``gspo``), ``top_entropy_quantile < 1``,
``off_policy_mask_threshold``, the entropy bonus, vLLM importance-sampling correction. Logged: the
loss's metrics (``clip_fraction*``, ``kl``, ``ratio_mean``) and TRL's ``entropy``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from trl import GRPOConfig, GRPOTrainer

from swift_zoo._errors import ConfigError
from swift_zoo.integrations.trl._base import ZooTRLMixin


class ZooGRPOTrainer(ZooTRLMixin, GRPOTrainer):
    """``trl.GRPOTrainer`` whose loss is a zoo group-policy loss (``grpo``, ``dapo``, ``dr_grpo``, ``bnpo``,
    ``cispo``, ``sapo``, ``gspo``).

    ::

        trainer = ZooGRPOTrainer(model="path/to/model", reward_funcs=reward, args=GRPOConfig(beta=0.04, ...),
                                 train_dataset=prompts, zoo_config={"loss_type": "grpo"})

    ``GRPOConfig`` fills ``beta``, ``epsilon_low`` (``epsilon``), ``epsilon_high`` (``epsilon_high`` or
    ``epsilon``; for ``cispo`` the cap minus one), ``delta``, ``max_completion_length`` (``dr_grpo``),
    ``temperature_pos``/``temperature_neg`` (``sapo_temperature_*``) and ``use_bias_correction_kl``.
    """

    trl_kind: ClassVar[str] = "grpo"
    trl_config_class: ClassVar[type] = GRPOConfig

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = super()._refused_options(trl_args)
        default = GRPOConfig.__dataclass_fields__["loss_type"].default
        if trl_args.loss_type != default:
            refused.append(("loss_type", trl_args.loss_type,
                            "it selects TRL's built-in loss; the zoo loss is zoo_config['loss_type']"))
        if trl_args.importance_sampling_level != "token":
            refused.append(("importance_sampling_level", trl_args.importance_sampling_level,
                            "a sequence-level ratio is the zoo loss 'gspo'"))
        if trl_args.top_entropy_quantile < 1.0:
            refused.append(("top_entropy_quantile", trl_args.top_entropy_quantile, "no entropy mask on zoo losses"))
        if trl_args.off_policy_mask_threshold is not None:
            refused.append(("off_policy_mask_threshold", trl_args.off_policy_mask_threshold,
                            "no off-policy sequence mask on zoo losses"))
        if trl_args.entropy_coef != 0.0 or trl_args.use_adaptive_entropy:
            refused.append(("entropy_coef", trl_args.entropy_coef, "no entropy bonus on zoo losses"))
        if trl_args.use_vllm and trl_args.vllm_importance_sampling_correction:
            refused.append(("vllm_importance_sampling_correction", True,
                            "the vLLM importance-sampling ratio is not applied to zoo losses"))
        window = trl_args.steps_per_generation * trl_args.num_iterations
        if window % trl_args.gradient_accumulation_steps:
            refused.append(("steps_per_generation", trl_args.steps_per_generation,
                            f"steps_per_generation * num_iterations = {window} is not a multiple of "
                            f"gradient_accumulation_steps = {trl_args.gradient_accumulation_steps}: an "
                            "accumulation window would span two generation batches, and its unit count would "
                            "not be known before its first backward pass"))
        return refused

    def _construction_context(self, trl_args: Any, arguments: dict[str, Any]) -> Any:
        beta = getattr(self.zoo_loss, "beta", 0.0)
        if beta != trl_args.beta:  # only set in loss_kwargs (both set and different is refused by the mapping)
            trl_args.beta = beta  # TRL loads the reference model and computes ref_per_token_logps iff beta != 0
        self._zoo_window: tuple[int, torch.Tensor | None] | None = None
        return super()._construction_context(trl_args, arguments)

    # ------------------------------------------------------------ normalisation
    def _units_of(self, mask: torch.Tensor) -> torch.Tensor | None:
        unit = self.zoo_loss.reduction_unit
        if unit == "token":
            return (mask != 0).sum()
        if unit == "sequence":
            return (mask != 0).any(-1).sum()
        return None

    @staticmethod
    def _trained_mask(batch: dict[str, Any]) -> torch.Tensor:
        mask = batch["completion_mask"]
        return mask if "tool_mask" not in batch else mask * batch["tool_mask"]

    def _window_units(self) -> torch.Tensor | None:
        """The loss units of the current accumulation window (all its micro-batches, all ranks)."""
        if self._zoo_window is not None and self._zoo_window[0] == self.state.global_step:
            return self._zoo_window[1]
        steps = self.current_gradient_accumulation_steps
        per_generation = self.args.steps_per_generation
        every = per_generation * self.num_iterations
        first, last = self._step, self._step + steps - 1
        if first // every != last // every:
            message = (
                f"{type(self).__name__}: the accumulation window of micro-steps {first}..{last} spans two "
                f"generation batches (one every {every} micro-steps), so its unit count is unknown at its first "
                "backward pass; make steps_per_generation * num_iterations a multiple of gradient_accumulation_steps "
                "and the number of training batches per epoch a multiple of it too"
            )
            raise ConfigError(message, key="steps_per_generation", expected="aligned windows", found=per_generation)
        counts = [self._units_of(self._trained_mask(self._buffered_inputs[step % per_generation]))
                  for step in range(first, last + 1)]
        total = None if any(c is None for c in counts) else self._sum_over_ranks(torch.stack(counts).sum())
        self._zoo_window = (self.state.global_step, total)
        return total

    # -------------------------------------------------------------------- loss
    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        mode = "train" if self.model.training else "eval"
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        per_token_logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True,
            pixel_values=inputs.get("pixel_values"), image_grid_thw=inputs.get("image_grid_thw"),
            num_images=inputs.get("num_images"), pixel_attention_mask=inputs.get("pixel_attention_mask"),
            spatial_shapes=inputs.get("spatial_shapes"), num_tiles=inputs.get("num_tiles"),
            image_sizes=inputs.get("image_sizes"), token_type_ids=inputs.get("token_type_ids"),
            mm_token_type_ids=inputs.get("mm_token_type_ids"), image_position_ids=inputs.get("image_position_ids"),
        )
        mask = self._trained_mask(inputs)
        model_outputs = {"per_token_logps": per_token_logps, "advantages": inputs["advantages"],
                         "completion_mask": mask}
        for key in ("old_per_token_logps", "ref_per_token_logps"):
            if inputs.get(key) is not None:
                model_outputs[key] = inputs[key]
        units = self._window_units() if mode == "train" else None
        loss = self._zoo_loss(model_outputs, num_items_in_batch=units, mode=mode)
        # TRL's entropy metric: the token-weighted mean over ranks
        totals = self.accelerator.reduce(torch.stack([(entropies * mask).sum(), mask.sum().float()]).detach(),
                                         reduction="sum")
        self._metrics[mode]["entropy"].append((totals[0] / totals[1].clamp(min=1.0)).item())
        return loss
