"""Zoo reference-free paired losses in ms-swift's CPO (SimPO) and ORPO trainers.

Both are TRL 0.29's trainers (``trl/experimental/cpo``, ``.../orpo``) under ms-swift subclasses; their
losses are ``cpo_loss(policy_chosen_logps, policy_rejected_logps)`` and ``odds_ratio_loss(...)``,
which see log-probs but no token counts. The adapter therefore wraps ``concatenated_forward`` to
read the counts from the concatenated labels first (TRL scores ``labels[:, 1:] != -100``), then
answers ``zoo:`` loss types in the loss method:

* **CPO** (``--rlhf_type cpo``, and ``--rlhf_type simpo``, which ms-swift runs on the CPO trainer):
  TRL averages the log-probs only for its own ``ipo``/``simpo``, so a zoo loss receives sums. TRL adds
  ``cpo_alpha * NLL`` (its token mean over the batch's chosen tokens) outside the loss: that term
  stays, as for ms-swift's own loss types, unless the zoo loss takes ``cpo_alpha`` itself (``zoo:cpo``),
  which then gets the value and the trainer's term is switched off.
* **ORPO** (``--rlhf_type orpo``): TRL always averages the log-probs, so the sums are recovered as
  average x count, and it adds its NLL outside as ``loss = nll - losses.mean()``. The adapter returns
  ``nll - zoo`` per pair, so the total is the zoo loss alone (``zoo:orpo`` has its own NLL; its gradient
  through TRL's cancels exactly).
"""

from __future__ import annotations

from functools import wraps
from types import ModuleType
from typing import Any

import torch

from swift_zoo.integrations.ms_swift._preference import pair_lengths, run_loss, single_zoo_loss

_LENGTHS = "_swift_zoo_pair_lengths"
_NLL = "_swift_zoo_nll"


def _wrap_forward(trainer_cls: type, rlhf_type: str, keep_nll: bool) -> None:
    original = trainer_cls.concatenated_forward

    @wraps(original)
    def concatenated_forward(self: Any, model: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        if single_zoo_loss(self, rlhf_type) is None:  # planning switches host terms off before TRL reads them
            return original(self, model, batch, *args, **kwargs)
        setattr(self, _LENGTHS, pair_lengths(batch["labels"]))
        output = original(self, model, batch, *args, **kwargs)
        if keep_nll:
            setattr(self, _NLL, output[4])
        return output

    trainer_cls.concatenated_forward = concatenated_forward


def _pair_outputs(trainer: Any, chosen_sums: torch.Tensor, rejected_sums: torch.Tensor) -> dict[str, torch.Tensor]:
    chosen_lengths, rejected_lengths = getattr(trainer, _LENGTHS)
    device = chosen_sums.device
    return {"policy_chosen_logps": chosen_sums, "policy_rejected_logps": rejected_sums,
            "chosen_lengths": chosen_lengths.to(device), "rejected_lengths": rejected_lengths.to(device)}


def patch_cpo(module: ModuleType) -> None:
    """Wrap ``CPOTrainer.concatenated_forward`` and ``cpo_loss`` in ``swift.rlhf_trainers.cpo_trainer``."""
    trainer_cls = module.CPOTrainer
    if getattr(trainer_cls.cpo_loss, "__swift_zoo__", False):
        return
    original_loss = trainer_cls.cpo_loss

    @wraps(original_loss)
    def cpo_loss(self: Any, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor) -> Any:
        plan = single_zoo_loss(self, "cpo")
        if plan is None:
            return original_loss(self, policy_chosen_logps, policy_rejected_logps)
        outputs = _pair_outputs(self, policy_chosen_logps, policy_rejected_logps)
        losses = run_loss(self, plan, outputs, policy_chosen_logps.shape[0])
        beta = getattr(plan.loss, "beta", self.beta)
        return losses, beta * policy_chosen_logps.detach(), beta * policy_rejected_logps.detach()

    cpo_loss.__swift_zoo__ = True
    trainer_cls.cpo_loss = cpo_loss
    _wrap_forward(trainer_cls, "cpo", keep_nll=False)


def patch_orpo(module: ModuleType) -> None:
    """Wrap ``ORPOTrainer.concatenated_forward`` and ``odds_ratio_loss`` in ``swift.rlhf_trainers.orpo_trainer``."""
    trainer_cls = module.ORPOTrainer
    if getattr(trainer_cls.odds_ratio_loss, "__swift_zoo__", False):
        return
    original_loss = trainer_cls.odds_ratio_loss

    @wraps(original_loss)
    def odds_ratio_loss(self: Any, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor) -> Any:
        plan = single_zoo_loss(self, "orpo")
        if plan is None:
            return original_loss(self, policy_chosen_logps, policy_rejected_logps)
        chosen_lengths, rejected_lengths = getattr(self, _LENGTHS)
        chosen = policy_chosen_logps * chosen_lengths.to(policy_chosen_logps)
        rejected = policy_rejected_logps * rejected_lengths.to(policy_rejected_logps)
        zoo = run_loss(self, plan, _pair_outputs(self, chosen, rejected), policy_chosen_logps.shape[0])
        losses = getattr(self, _NLL) - zoo  # TRL: loss = nll - losses.mean() = zoo
        beta = getattr(plan.loss, "beta", self.beta)
        zero = torch.zeros((), device=zoo.device)
        return losses, beta * policy_chosen_logps.detach(), beta * policy_rejected_logps.detach(), zero, zero

    odds_ratio_loss.__swift_zoo__ = True
    trainer_cls.odds_ratio_loss = odds_ratio_loss
    _wrap_forward(trainer_cls, "orpo", keep_nll=True)
