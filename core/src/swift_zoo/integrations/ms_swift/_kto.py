"""Zoo unpaired losses in ms-swift's KTO trainer (``swift rlhf --rlhf_type kto --loss_type zoo:<name>``).

The trainer is TRL 0.29's ``KTOTrainer`` under ms-swift's subclass; its loss is
``kto_loss(policy_chosen_logps, policy_rejected_logps, policy_KL_logps, reference_chosen_logps,
reference_rejected_logps, reference_KL_logps)`` with the desirable and undesirable completions of
the batch in separate tensors (``trl/experimental/kto/kto_trainer.py:982``). The adapter concatenates
them (desirable first) into ``policy_logps`` / ``reference_logps`` with ``is_desirable``, and hands a
loss that reads the KL reference point TRL's own estimate as ``kl_baseline``: the mean of the
mismatched pairs' log-ratios, gathered over processes and clamped at 0, as TRL's ``kto`` uses it.
A zoo loss without a KL input (``apo_zero_unpaired``, ``bco``) switches TRL's KL forward pass off.
"""

from __future__ import annotations

from functools import wraps
from types import ModuleType
from typing import Any

import torch

from swift_zoo.integrations.ms_swift._preference import run_loss, single_zoo_loss


def patch(module: ModuleType) -> None:
    """Wrap ``KTOTrainer.__init__`` and ``kto_loss`` in ``swift.rlhf_trainers.kto_trainer``."""
    trainer_cls = module.KTOTrainer
    if getattr(trainer_cls.kto_loss, "__swift_zoo__", False):
        return
    original_init = trainer_cls.__init__
    original_loss = trainer_cls.kto_loss

    @wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        plan = single_zoo_loss(self, "kto")
        if plan is not None and not plan.needs_kl:
            self.calculate_KL = False  # read by KTOTrainer._compute_kl_logps (ms-swift kto_trainer.py:130)

    @wraps(original_loss)
    def kto_loss(self: Any, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                 policy_kl_logps: Any, reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
                 reference_kl_logps: Any) -> Any:
        plan = single_zoo_loss(self, "kto")
        if plan is None:
            return original_loss(self, policy_chosen_logps, policy_rejected_logps, policy_kl_logps,
                                 reference_chosen_logps, reference_rejected_logps, reference_kl_logps)
        device = self.accelerator.device
        chosen, rejected = policy_chosen_logps.shape[0], policy_rejected_logps.shape[0]
        outputs = {
            "policy_logps": torch.cat([policy_chosen_logps, policy_rejected_logps]).to(device),
            "is_desirable": torch.arange(chosen + rejected, device=device) < chosen,
        }
        kl = torch.zeros(1, device=device)
        if self.calculate_KL and policy_kl_logps is not None:
            kl = (policy_kl_logps - reference_kl_logps).mean().detach()
            kl = self.accelerator.gather_for_metrics(kl).mean().clamp(min=0)
        if plan.needs_kl:
            outputs["kl_baseline"] = kl.reshape(())
        beta = getattr(plan.loss, "beta", self.beta)
        chosen_rewards = beta * policy_chosen_logps.detach()
        rejected_rewards = beta * policy_rejected_logps.detach()
        if not plan.reference_free:
            outputs["reference_logps"] = torch.cat([reference_chosen_logps, reference_rejected_logps]).to(device)
            chosen_rewards = chosen_rewards - beta * reference_chosen_logps.detach()
            rejected_rewards = rejected_rewards - beta * reference_rejected_logps.detach()
        losses = run_loss(self, plan, outputs, chosen + rejected)
        return losses, chosen_rewards, rejected_rewards, kl

    kto_loss.__swift_zoo__ = True
    trainer_cls.__init__ = __init__
    trainer_cls.kto_loss = kto_loss
