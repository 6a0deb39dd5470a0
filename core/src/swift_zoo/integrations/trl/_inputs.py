"""Which declared loss inputs each zoo TRL trainer can supply, and the construction-time check.

A loss whose required inputs a trainer cannot supply fails when the trainer is built, with the
trainers that can supply them, not at the first step.

Imports neither torch nor TRL.
"""

from __future__ import annotations

from typing import Any

from swift_zoo._errors import ConfigError

#: Zoo trainer class for each kind, as named in messages.
TRAINER_NAMES = {
    "sft": "ZooSFTTrainer",
    "dpo": "ZooDPOTrainer",
    "kto": "ZooKTOTrainer",
    "grpo": "ZooGRPOTrainer",
    "cpo": "ZooCPOTrainer",
    "orpo": "ZooORPOTrainer",
}

#: The ``model_outputs`` keys (and ``labels``) each trainer builds from TRL's batch.
SUPPLIED_INPUTS: dict[str, frozenset[str]] = {
    # full logits with the unshifted labels; or the final hidden states [N, H] and the LM head, rows aligned
    # with labels [N] (the causal shift applied), for losses that never build the logits
    "sft": frozenset({"logits", "labels", "hidden_states", "lm_head_weight", "lm_head_bias"}),
    # summed completion log-probs of the chosen and rejected halves of TRL's batch and their token counts
    "dpo": frozenset({
        "policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps", "reference_rejected_logps",
        "chosen_lengths", "rejected_lengths",
    }),
    # summed completion log-probs, the desirable flag, and TRL's KL reference point (all-reduced over ranks)
    "kto": frozenset({"policy_logps", "reference_logps", "is_desirable", "kl_baseline"}),
    # per-token log-probs over the completion, TRL's advantages and completion mask (tool tokens masked)
    "grpo": frozenset({
        "per_token_logps", "old_per_token_logps", "ref_per_token_logps", "advantages", "completion_mask",
    }),
    # trl.experimental's CPO and ORPO trainers: summed completion log-probs and token counts, no reference model
    "cpo": frozenset({"policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"}),
    "orpo": frozenset({"policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"}),
}


def required_inputs(loss: Any) -> set[str]:
    return {spec.key for spec in loss.inputs if not spec.optional}


def uses_reference(loss: Any) -> bool:
    """Whether the loss reads a reference model's log-probs (a declared ``reference_*`` / ``ref_*`` input)."""
    return any(spec.key.startswith(("reference_", "ref_")) for spec in loss.inputs)


def check_supplied(kind: str, loss: Any) -> None:
    """Raise :class:`ConfigError` when ``kind``'s trainer cannot supply a required input of ``loss`` (an
    instance, or a class whose inputs do not depend on its arguments)."""
    missing = sorted(required_inputs(loss) - SUPPLIED_INPUTS[kind])
    if not missing:
        return
    owner, name = TRAINER_NAMES[kind], getattr(loss, "name", "") or getattr(loss, "__name__", type(loss).__name__)
    fits = [TRAINER_NAMES[other] for other, keys in SUPPLIED_INPUTS.items()
            if other != kind and required_inputs(loss) <= keys]
    instead = (f"use {' or '.join(fits)} instead" if fits
               else "no zoo TRL trainer supplies them; call the loss from your own trainer")
    message = (
        f"{owner}: loss {name!r} needs {', '.join(missing)}, which {owner} cannot supply "
        f"(it supplies {', '.join(sorted(SUPPLIED_INPUTS[kind]))}); {instead}"
    )
    raise ConfigError(message, key="loss_type", expected=f"a loss whose inputs {owner} supplies", found=name)
