"""What the preference-trainer adapters (DPO, CPO/SimPO, ORPO, KTO) share.

A trainer's zoo losses are planned once, on first use, from its ``loss_type`` (the kwargs found at
argument time come along on the training arguments), moved to the trainer's device, and the
trainer's own copies of terms the zoo loss already contains are switched off
(:data:`HOST_TERMS`). Each adapter then returns ``loss.expand(B)`` where ms-swift or TRL expects
per-pair (per-sample) losses: their ``.mean()`` (``.nanmean()``) is then the zoo value, reduced
the zoo's way (over the counted pairs), and ms-swift's packing scale still applies on top.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from swift_zoo.integrations.ms_swift._log import log_once
from swift_zoo.integrations.ms_swift._names import canonical, is_zoo_name
from swift_zoo.integrations.ms_swift._plan import PLANS_ATTRIBUTE, LossPlan, plan_loss

_ATTRIBUTE = "_swift_zoo_plans"


def _cpo_alpha_off(trainer: Any) -> None:
    trainer.cpo_alpha = 0.0  # read by TRL's CPOTrainer.concatenated_forward / get_batch_loss_metrics


def _rpo_alpha_off(trainer: Any) -> None:
    trainer.args.rpo_alpha = None  # read by ms-swift's DPOTrainer.get_batch_loss_metrics (dpo_trainer.py:412)


HOST_TERMS: dict[str, Callable[[Any], None]] = {"cpo_alpha": _cpo_alpha_off, "rpo_alpha": _rpo_alpha_off}


def loss_types(trainer: Any) -> list[str]:
    """The trainer's loss types (ms-swift's ORPO trainer keeps it only on its arguments)."""
    value = getattr(trainer, "loss_type", None) or getattr(trainer.args, "loss_type", None)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def single_zoo_loss(trainer: Any, rlhf_type: str) -> LossPlan | None:
    """The plan of a trainer with one loss type (CPO, ORPO, KTO) when it is a ``zoo:`` one, else ``None``."""
    (name,) = loss_types(trainer)
    return trainer_plans(trainer, rlhf_type)[name] if is_zoo_name(name) else None


def trainer_plans(trainer: Any, rlhf_type: str) -> dict[str, LossPlan]:
    """``{loss_type: LossPlan}`` for the trainer's ``zoo:`` loss types (built on first call)."""
    plans = trainer.__dict__.get(_ATTRIBUTE)
    if plans is not None:
        return plans
    stored = getattr(trainer.args, PLANS_ATTRIBUTE, None) or {}
    plans = {}
    for name in loss_types(trainer):
        if not is_zoo_name(name):
            continue
        plan = plan_loss(name, trainer.args, rlhf_type=rlhf_type, stored=stored.get(canonical(name)))
        plan.loss.to(trainer.accelerator.device)
        for term in plan.host_terms_off:
            HOST_TERMS[term](trainer)
        log_once(f"swift zoo: {plan.describe()}")
        plans[name] = plan
    trainer.__dict__[_ATTRIBUTE] = plans
    return plans


def all_reference_free(trainer: Any, rlhf_type: str) -> bool:
    """Every loss type is a zoo loss that reads no reference log-probs (so no reference pass is needed)."""
    plans = trainer_plans(trainer, rlhf_type)
    return len(plans) == len(loss_types(trainer)) and all(plan.reference_free for plan in plans.values())


def run_loss(trainer: Any, plan: LossPlan, model_outputs: dict[str, torch.Tensor], count: int) -> torch.Tensor:
    """The zoo loss on ``model_outputs``, metrics reported, expanded to ``count`` per-sample entries."""
    from swift_zoo.integrations.ms_swift._metrics import report_metrics

    plan.loss.train(trainer.model.training)
    value = plan.loss(model_outputs)
    report_metrics(trainer, plan.loss)
    return value.expand(count)


def pair_lengths(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scored tokens of each chosen and rejected completion from concatenated ``labels [2B, T]``.

    TRL's ``get_batch_logps`` scores ``labels[:, 1:] != -100`` (chosen rows first).
    """
    if labels.dim() != 2 or labels.shape[0] % 2:
        message = (f"swift zoo: expected concatenated chosen/rejected labels [2B, T], got shape "
                   f"{tuple(labels.shape)} (padding_free / packing is not supported with zoo losses here)")
        raise ValueError(message)
    counts = (labels[:, 1:] != -100).sum(-1)
    half = labels.shape[0] // 2
    return counts[:half], counts[half:]
