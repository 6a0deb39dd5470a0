"""``ZooGRPOTrainer``: TRL's ``GRPOTrainer`` with a zoo policy loss, through ``_compute_loss``.

``GRPOTrainer`` (TRL 1.16) calls the private ``_compute_loss(model, inputs)``
(``trl/trainer/grpo_trainer.py`` line 3020) on one micro-batch of its buffered generation batch. This
overrides it: the per-token log-probs and entropies from TRL's ``_get_per_token_logps_and_entropies``,
then the zoo loss on ``per_token_logps``, ``old_per_token_logps`` (when TRL has them: off-policy steps),
``ref_per_token_logps`` (when ``beta > 0``), ``rollout_per_token_logps`` (the sampler's log-probs, when TRL
has them: vLLM, or a ``rollout_func`` that returns ``logprobs``), ``entropy``, ``advantages`` and the
completion mask (tool-output tokens masked, as TRL).

**The loss.** ``zoo_config["loss_type"]`` names it; without one, the trainer takes the zoo loss declared
equal to ``GRPOConfig.loss_type`` at its ``importance_sampling_level`` (:mod:`._grpo_loss_types`):
``dapo`` for TRL's default, ``grpo``, ``bnpo``, ``dr_grpo``, ``cispo``, ``sapo``, ``vespo``; ``gspo`` for
``grpo`` and ``luspo`` for ``luspo`` at the ``"sequence"`` level. A named loss must agree with a
``loss_type`` / level set away from TRL's defaults.

**TRL's options, mapped** onto the zoo options of the same meaning (every zoo policy loss has them):
``off_policy_mask_threshold``; ``top_entropy_quantile`` (the quantile over the micro-batch's tokens, as TRL on
one process: several processes are refused, TRL takes it over every rank's tokens); ``entropy_coef`` for a
loss whose unit is a token (TRL's bonus is the mean entropy per token whatever the loss type: the zoo's,
aggregated like the policy term, is that over the accumulation window; a loss aggregated per completion
would weight each completion's mean entropy instead, so it is refused there, as is the bonus together with
the entropy mask, which TRL applies to the masked tokens only); the vLLM importance-sampling correction
(``use_vllm`` with ``vllm_importance_sampling_correction``): ``vllm_importance_sampling_mode`` is
``rollout_correction``, ``vllm_importance_sampling_clip_min`` / ``_max`` are ``rollout_correction_min`` /
``_max``, and the weights come from TRL's ``sampling_per_token_logps`` against ``old_per_token_logps``, the
quantities TRL's ``importance_sampling_ratio`` is made of. A token vLLM could not score (NaN) gets the old
log-prob there, so its ratio is 1, as in TRL; TRL's off-policy mask reads such a token at the current
log-prob instead, so with both options on the two differ there by the old-versus-current difference. Refused: ``use_adaptive_entropy`` (TRL's controller changes the coefficient every step; a zoo
loss's ``entropy_coef`` is a constant).

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

Logged: the loss's metrics (``clip_fraction*``, ``kl``, ``ratio_mean``, the options' fractions) and TRL's
``entropy``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from trl import GRPOConfig, GRPOTrainer

from swift_zoo._errors import ConfigError
from swift_zoo._registry import get_loss
from swift_zoo.integrations.trl._base import ZooTRLMixin
from swift_zoo.integrations.trl._grpo_loss_types import TRL_DEFAULT_LEVEL, spelled, zoo_loss_for_grpo

_DEFAULT_LOSS_TYPE = GRPOConfig.__dataclass_fields__["loss_type"].default


class ZooGRPOTrainer(ZooTRLMixin, GRPOTrainer):
    """``trl.GRPOTrainer`` whose loss is a zoo group-policy loss (``grpo``, ``dapo``, ``dr_grpo``, ``bnpo``,
    ``cispo``, ``sapo``, ``gspo``, ``luspo``, ``vespo``...).

    ::

        trainer = ZooGRPOTrainer(model="path/to/model", reward_funcs=reward, args=GRPOConfig(beta=0.04, ...),
                                 train_dataset=prompts, zoo_config={"loss_type": "grpo"})

    Without ``zoo_config["loss_type"]`` the loss is the zoo's equal of ``GRPOConfig.loss_type``.
    ``GRPOConfig`` fills ``beta``, ``epsilon_low`` (``epsilon``), ``epsilon_high`` (``epsilon_high`` or
    ``epsilon``; for ``cispo`` the cap minus one), ``delta``, ``max_completion_length`` (``dr_grpo``),
    ``temperature_pos``/``temperature_neg`` (``sapo_temperature_*``), ``k_pos``... (``vespo_*``),
    ``use_bias_correction_kl``, ``off_policy_mask_threshold``, ``top_entropy_quantile``, ``entropy_coef`` and
    the rollout correction (``vllm_importance_sampling_*`` with ``use_vllm``).
    """

    trl_kind: ClassVar[str] = "grpo"
    trl_config_class: ClassVar[type] = GRPOConfig
    trainer_metrics: ClassVar[frozenset[str]] = frozenset({"entropy"})  # TRL's: token-weighted over ranks
    _zoo_loss_from_trl: bool = False

    def _default_loss_name(self, trl_args: Any) -> str:
        self._zoo_loss_from_trl = True
        return zoo_loss_for_grpo(type(self).__name__, trl_args.loss_type, trl_args.importance_sampling_level)

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = super()._refused_options(trl_args) + self._loss_type_conflicts(trl_args)
        name = self.zoo_loss.display_name
        if trl_args.entropy_coef != 0.0:
            if self.zoo_loss.reduction_unit != "token":
                mode = getattr(self.zoo_loss, "loss_agg_mode", None)
                refused.append(("entropy_coef", trl_args.entropy_coef,
                                f"TRL's bonus is the mean entropy per token whatever the loss type, while {name} "
                                f"aggregates per {self.zoo_loss.reduction_unit} (loss_agg_mode={mode!r}) and would "
                                "weight each completion's mean entropy instead; use a token-mean loss, or "
                                "zoo_config['loss_kwargs']['entropy_coef'] for the zoo's bonus aggregated like the "
                                "policy term (verl's)"))
            if trl_args.top_entropy_quantile < 1.0:
                refused.append(("entropy_coef", trl_args.entropy_coef,
                                "with top_entropy_quantile < 1 TRL's bonus covers only the high-entropy tokens, the "
                                "zoo's every counted token"))
        if trl_args.use_adaptive_entropy:
            refused.append(("use_adaptive_entropy", True, "TRL's controller changes entropy_coef every optimizer "
                            "step; a zoo loss's entropy_coef is a constant"))
        window = trl_args.steps_per_generation * trl_args.num_iterations
        if window % trl_args.gradient_accumulation_steps:
            refused.append(("steps_per_generation", trl_args.steps_per_generation,
                            f"steps_per_generation * num_iterations = {window} is not a multiple of "
                            f"gradient_accumulation_steps = {trl_args.gradient_accumulation_steps}: an "
                            "accumulation window would span two generation batches, and its unit count would "
                            "not be known before its first backward pass"))
        return refused

    def _loss_type_conflicts(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        """A ``loss_type`` / ``importance_sampling_level`` set away from TRL's defaults that names another loss
        than the zoo loss named in ``zoo_config`` (or ``zoo_loss``)."""
        setting = (trl_args.loss_type, trl_args.importance_sampling_level)
        if self._zoo_loss_from_trl or setting == (_DEFAULT_LOSS_TYPE, TRL_DEFAULT_LEVEL):
            return []
        field = "loss_type" if setting[0] != _DEFAULT_LOSS_TYPE else "importance_sampling_level"
        value = getattr(trl_args, field)
        name = self.zoo_loss.display_name
        try:
            wanted = zoo_loss_for_grpo(type(self).__name__, *setting)
        except ConfigError:
            return [(field, value, f"TRL's {spelled(*setting)} has no zoo loss declared equal, and the zoo loss "
                                   f"here is {name!r}; leave GRPOConfig at its defaults to train {name!r}")]
        if get_loss(wanted) is type(self.zoo_loss):
            return []
        return [(field, value, f"TRL's {spelled(*setting)} is the zoo loss {wanted!r}, not {name!r}: leave "
                               f"zoo_config['loss_type'] out to train {wanted!r}, or GRPOConfig at its defaults to "
                               f"train {name!r}")]

    def _construction_context(self, trl_args: Any, arguments: dict[str, Any]) -> Any:
        beta = getattr(self.zoo_loss, "beta", 0.0)
        if beta != trl_args.beta:  # only set in loss_kwargs (both set and different is refused by the mapping)
            trl_args.beta = beta  # TRL loads the reference model and computes ref_per_token_logps iff beta != 0
        correction = getattr(self.zoo_loss, "rollout_correction", None)
        if correction is not None and not trl_args.use_vllm and arguments.get("rollout_func") is None:
            message = (
                f"{type(self).__name__}: {self.zoo_loss.display_name} has rollout_correction={correction!r}, which "
                "reads the sampler's log-probs; GRPOTrainer has them only from vLLM (use_vllm=True) or from a "
                "rollout_func that returns logprobs"
            )
            raise ConfigError(message, key="rollout_correction", expected="use_vllm or a rollout_func", found=correction)
        self._zoo_window: tuple[int, torch.Tensor | None] | None = None
        return super()._construction_context(trl_args, arguments)

    def _zoo_after_init(self) -> None:
        if self.args.top_entropy_quantile < 1.0 and self.accelerator.num_processes > 1:
            message = (
                f"{type(self).__name__}: GRPOConfig.top_entropy_quantile={self.args.top_entropy_quantile} with "
                f"{self.accelerator.num_processes} processes: TRL takes the entropy quantile over the tokens of every "
                "rank, the zoo loss over each rank's micro-batch; run it on one process"
            )
            raise ConfigError(message, key="top_entropy_quantile", expected="one process",
                              found=self.accelerator.num_processes)
        super()._zoo_after_init()

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
        declared = {spec.key for spec in self.zoo_loss.inputs}
        sampling = inputs.get("sampling_per_token_logps")
        if sampling is not None and "rollout_per_token_logps" in declared:
            # a token vLLM could not score is NaN; TRL gives it importance ratio 1, i.e. the old log-prob
            old = model_outputs.get("old_per_token_logps", per_token_logps.detach())
            model_outputs["rollout_per_token_logps"] = torch.where(torch.isnan(sampling), old, sampling)
        if "entropy" in declared:
            model_outputs["entropy"] = entropies
        units = self._window_units() if mode == "train" else None
        loss = self._zoo_loss(model_outputs, num_items_in_batch=units, mode=mode)
        # TRL's entropy metric: the token-weighted mean over ranks
        totals = self.accelerator.reduce(torch.stack([(entropies * mask).sum(), mask.sum().float()]).detach(),
                                         reduction="sum")
        self._metrics[mode]["entropy"].append((totals[0] / totals[1].clamp(min=1.0)).item())
        return loss
