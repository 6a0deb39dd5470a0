"""Zoo paired losses in ms-swift's DPO trainer (``swift rlhf --rlhf_type dpo --loss_type zoo:<name>``).

ms-swift's ``DPOTrainer.dpo_loss`` (``swift/rlhf_trainers/dpo_trainer.py:228``) is an if/elif over
its own loss types, called once per loss type by ``get_batch_loss_metrics`` (line 362) with the
summed completion log-probs of the policy and the reference and the forward's ``model_output``
(which carries the token counts). The wrapper answers ``zoo:`` loss types and hands every other
one to the original, so zoo and ms-swift losses mix in one ``--loss_type`` list (with
``--loss_weights``):

* inputs: ``chosen_logps`` -> ``policy_chosen_logps``, ``ref_chosen_logps`` ->
  ``reference_chosen_logps`` (likewise rejected), ``model_output['chosen_completion_token_counts']``
  -> ``chosen_lengths`` (likewise rejected). ms-swift divides by the token counts only for its own
  ``ipo``, so a zoo loss always gets raw sums (``zoo:ipo`` normalises once, itself);
* when every loss type is a reference-free zoo loss, ``compute_ref_log_probs`` returns no reference
  and runs no forward pass (and the pipeline does not load a reference model at all);
* rewards for ms-swift's ``rewards/*`` metrics: ``beta * (policy - reference)`` as ms-swift's, or
  ``beta * policy`` for a reference-free loss (TRL's CPO convention); the zoo's own metrics are
  logged beside them as ``zoo/*``.
"""

from __future__ import annotations

from functools import wraps
from types import ModuleType
from typing import Any

import torch

from swift_zoo.integrations.ms_swift._names import is_zoo_name
from swift_zoo.integrations.ms_swift._preference import all_reference_free, run_loss, trainer_plans


def patch(module: ModuleType) -> None:
    """Wrap ``DPOTrainer.dpo_loss`` and ``compute_ref_log_probs`` in ``swift.rlhf_trainers.dpo_trainer``."""
    trainer_cls = module.DPOTrainer
    if getattr(trainer_cls.dpo_loss, "__swift_zoo__", False):
        return
    original_loss = trainer_cls.dpo_loss
    original_reference = trainer_cls.compute_ref_log_probs

    @wraps(original_loss)
    def dpo_loss(self: Any, chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, ref_chosen_logps: Any,
                 ref_rejected_logps: Any, loss_type: str = "sigmoid", model_output: Any = None) -> Any:
        if not is_zoo_name(loss_type):
            return original_loss(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
                                 loss_type, model_output)
        plan = trainer_plans(self, "dpo")[loss_type]
        device = self.accelerator.device
        outputs = {
            "policy_chosen_logps": chosen_logps.to(device), "policy_rejected_logps": rejected_logps.to(device),
            "chosen_lengths": model_output["chosen_completion_token_counts"].to(device),
            "rejected_lengths": model_output["rejected_completion_token_counts"].to(device),
        }
        beta = getattr(plan.loss, "beta", self.beta)
        chosen_rewards, rejected_rewards = beta * chosen_logps.detach(), beta * rejected_logps.detach()
        if not plan.reference_free:
            outputs["reference_chosen_logps"] = ref_chosen_logps.to(device)
            outputs["reference_rejected_logps"] = ref_rejected_logps.to(device)
            chosen_rewards = beta * (chosen_logps - ref_chosen_logps.to(chosen_logps)).detach()
            rejected_rewards = beta * (rejected_logps - ref_rejected_logps.to(rejected_logps)).detach()
        losses = run_loss(self, plan, outputs, chosen_logps.shape[0])
        return losses, chosen_rewards.to(device), rejected_rewards.to(device)

    @wraps(original_reference)
    def compute_ref_log_probs(self: Any, batch: Any) -> Any:
        if all_reference_free(self, "dpo"):
            return None, None
        return original_reference(self, batch)

    dpo_loss.__swift_zoo__ = True
    trainer_cls.dpo_loss = dpo_loss
    trainer_cls.compute_ref_log_probs = compute_ref_log_probs
