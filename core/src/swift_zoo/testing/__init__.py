"""The swift zoo conformance suite: named checks every loss and optimizer plugin passes.

Three ways to use it:

* ``check_loss(obj)`` / ``check_optimizer(cls)`` / ``check_advantage(obj)`` return a :class:`ConformanceReport`
  (``on_fail="raise"`` raises :class:`swift_zoo.ConformanceError` at the first failure);
* ``@parametrize_with_checks([...])`` turns every (subject, check) pair into a pytest case;
* ``swift-zoo check <distribution|name>`` (:func:`run_check_cli`) prints a table and exits non-zero
  on failure.

Names are re-exported lazily: importing this package (or the opt-in ``pytest_plugin``) does not
import torch; the first use of a check does.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ADVANTAGE_CHECKS": "swift_zoo.testing._advantage_checks",
    "check_advantage_metadata": "swift_zoo.testing._advantage_checks",
    "check_advantage_unknown_kwargs_rejected": "swift_zoo.testing._advantage_checks",
    "check_advantage_output": "swift_zoo.testing._advantage_checks",
    "check_advantage_deterministic": "swift_zoo.testing._advantage_checks",
    "check_advantage_inputs_not_mutated": "swift_zoo.testing._advantage_checks",
    "check_advantage_masking": "swift_zoo.testing._advantage_checks",
    "check_advantage_permutation": "swift_zoo.testing._advantage_checks",
    "check_advantage_degenerate_groups": "swift_zoo.testing._advantage_checks",
    "check_advantage_extra_outputs": "swift_zoo.testing._advantage_checks",
    "check_advantage_low_precision": "swift_zoo.testing._advantage_checks",
    "advantage_checks": "swift_zoo.testing._runner",
    "check_advantage": "swift_zoo.testing._runner",
    "CheckResult": "swift_zoo.testing._report",
    "CheckSkipped": "swift_zoo.testing._report",
    "ConformanceReport": "swift_zoo.testing._report",
    "LOSS_CHECKS": "swift_zoo.testing._loss_checks",
    "OPTIMIZER_CHECKS": "swift_zoo.testing._optimizer_checks",
    "OptimizerSubject": "swift_zoo.testing._subject",
    "TinyLM": "swift_zoo.testing._models",
    "check_add_param_group": "swift_zoo.testing._optimizer_checks",
    "check_bf16_params": "swift_zoo.testing._optimizer_checks",
    "check_closure": "swift_zoo.testing._optimizer_checks",
    "check_cuda": "swift_zoo.testing._loss_checks",
    "check_deterministic": "swift_zoo.testing._loss_checks",
    "check_extreme_inputs": "swift_zoo.testing._loss_checks",
    "check_foreign_state_refused": "swift_zoo.testing._optimizer_checks",
    "check_gradcheck": "swift_zoo.testing._loss_checks",
    "check_gradients_reach_inputs": "swift_zoo.testing._loss_checks",
    "check_inputs_not_mutated": "swift_zoo.testing._loss_checks",
    "check_loss": "swift_zoo.testing._runner",
    "check_low_precision": "swift_zoo.testing._loss_checks",
    "check_masking": "swift_zoo.testing._loss_checks",
    "check_metadata": "swift_zoo.testing._loss_checks",
    "check_microbatch_split": "swift_zoo.testing._loss_checks",
    "check_no_grad_params_untouched": "swift_zoo.testing._optimizer_checks",
    "check_nonfinite_gradient": "swift_zoo.testing._optimizer_checks",
    "check_optimizer": "swift_zoo.testing._runner",
    "check_per_group_lr": "swift_zoo.testing._optimizer_checks",
    "check_permutation": "swift_zoo.testing._loss_checks",
    "check_reduces_quadratic": "swift_zoo.testing._optimizer_checks",
    "check_scalar_output": "swift_zoo.testing._loss_checks",
    "check_scheduler_takes_effect": "swift_zoo.testing._optimizer_checks",
    "check_state_bytes": "swift_zoo.testing._optimizer_checks",
    "check_state_dict_resume": "swift_zoo.testing._optimizer_checks",
    "check_trains_tiny_lm": "swift_zoo.testing._optimizer_checks",
    "check_unknown_kwargs_rejected": "swift_zoo.testing._loss_checks",
    "check_zero_lr_no_movement": "swift_zoo.testing._optimizer_checks",
    "loss_checks": "swift_zoo.testing._runner",
    "optimizer_checks": "swift_zoo.testing._runner",
    "parametrize_with_checks": "swift_zoo.testing._pytest",
    "run_check_cli": "swift_zoo.testing._cli",
}

__all__ = [
    "ADVANTAGE_CHECKS",
    "LOSS_CHECKS",
    "OPTIMIZER_CHECKS",
    "CheckResult",
    "CheckSkipped",
    "ConformanceReport",
    "OptimizerSubject",
    "TinyLM",
    "advantage_checks",
    "check_add_param_group",
    "check_advantage",
    "check_advantage_degenerate_groups",
    "check_advantage_deterministic",
    "check_advantage_extra_outputs",
    "check_advantage_inputs_not_mutated",
    "check_advantage_low_precision",
    "check_advantage_masking",
    "check_advantage_metadata",
    "check_advantage_output",
    "check_advantage_permutation",
    "check_advantage_unknown_kwargs_rejected",
    "check_bf16_params",
    "check_closure",
    "check_cuda",
    "check_deterministic",
    "check_extreme_inputs",
    "check_foreign_state_refused",
    "check_gradcheck",
    "check_gradients_reach_inputs",
    "check_inputs_not_mutated",
    "check_loss",
    "check_low_precision",
    "check_masking",
    "check_metadata",
    "check_microbatch_split",
    "check_no_grad_params_untouched",
    "check_nonfinite_gradient",
    "check_optimizer",
    "check_per_group_lr",
    "check_permutation",
    "check_reduces_quadratic",
    "check_scalar_output",
    "check_scheduler_takes_effect",
    "check_state_bytes",
    "check_state_dict_resume",
    "check_trains_tiny_lm",
    "check_unknown_kwargs_rejected",
    "check_zero_lr_no_movement",
    "loss_checks",
    "optimizer_checks",
    "parametrize_with_checks",
    "run_check_cli",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    message = f"module 'swift_zoo.testing' has no attribute {name!r}"
    raise AttributeError(message)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
