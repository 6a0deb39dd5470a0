"""Zoo names checked while ms-swift parses arguments, before the model loads.

``SftArguments.__post_init__`` ends with ``TrainerFactory.get_training_args(self)``
(``swift/arguments/sft_args.py:234``; ``RLHFArguments.__post_init__`` runs it too, after its
``_init_simpo`` and ``_set_default``). That classmethod is wrapped so that, for every ``zoo:`` name in
``--loss_type`` and ``--optimizer``, the argument step already

* resolves the name (an unknown one raises :class:`swift_zoo.UnknownLossError` /
  :class:`swift_zoo.UnknownOptimizerError` with "did you mean", not a bare ``KeyError`` after the model
  loaded),
* gathers and validates the kwargs (``SWIFT_ZOO_LOSS_KWARGS``, ``--optim_args``) and builds the loss,
* checks that the loss runs under this command (a paired loss under ``swift sft`` names the
  ``--rlhf_type`` to use) and refuses combinations that would silently change its meaning
  (``--enable_dft_loss`` or sequence parallelism with a zoo SFT loss),
* writes the canonical ``zoo:`` spelling back, and hands the kwargs to the trainer on the training
  arguments.

``SwiftRLHF._prepare_model_tokenizer`` is wrapped so a run whose losses are all reference-free does
not load the reference model, and the pipeline's ``prepare_kto_dataset`` so a KTO-trainer loss that
reads no KL reference point gets the data ms-swift prepares for its own such loss
(``apo_zero_unpaired``: no shuffled mismatched completions, ``swift/pipelines/train/kto.py:43``).
"""

from __future__ import annotations

import copy
from functools import wraps
from types import ModuleType
from typing import Any

from swift_zoo._errors import ConfigError
from swift_zoo.integrations.ms_swift._log import log_once
from swift_zoo.integrations.ms_swift._names import canonical, is_zoo_name
from swift_zoo.integrations.ms_swift._plan import PLANS_ATTRIBUTE, plan_loss, stored_plan

_REFERENCE_FREE = "swift_zoo_reference_free"
_NO_KL = "swift_zoo_no_kl"


def _refuse(flag: str, host_name: str, why: str) -> None:
    message = f"--loss_type {host_name} with {flag}: {why}"
    raise ConfigError(message, key=flag.lstrip("-").split()[0], expected="unset", found=flag)


def check_arguments(args: Any) -> dict[str, dict[str, Any]]:
    """Validate the ``zoo:`` names of ms-swift ``args`` in place; the plans to hand to the trainer."""
    from swift_zoo.integrations.ms_swift._install import register_names

    register_names()  # in-process registrations made after install (an --external_plugins file, say)
    stored: dict[str, dict[str, Any]] = {}
    rlhf_type = getattr(args, "rlhf_type", None)
    value = getattr(args, "loss_type", None)
    names = list(value) if isinstance(value, (list, tuple)) else [value]
    reference_free, needs_kl = [], []
    for i, name in enumerate(names):
        if not is_zoo_name(name):
            continue
        if rlhf_type is None:
            _check_sft_flags(args, name)
        plan = plan_loss(name, args, rlhf_type=rlhf_type, task_type=getattr(args, "task_type", None))
        names[i] = canonical(name)
        stored[names[i]] = stored_plan(plan)
        reference_free.append(plan.reference_free)
        needs_kl.append(plan.needs_kl)
    if stored:
        args.loss_type = names if isinstance(value, (list, tuple)) else names[0]
        setattr(args, _REFERENCE_FREE, len(reference_free) == len(names) and all(reference_free))
        setattr(args, _NO_KL, len(needs_kl) == len(names) and not any(needs_kl))
    if is_zoo_name(getattr(args, "optimizer", None)):
        from swift_zoo.integrations.ms_swift._optim_args import optimizer_kwargs

        optimizer_kwargs(args.optimizer, args)
        args.optimizer = canonical(args.optimizer)
    return stored


def _check_sft_flags(args: Any, name: str) -> None:
    if getattr(args, "enable_dft_loss", False):
        _refuse("--enable_dft_loss true", name, "ms-swift applies DFT only to its own loss and would ignore it "
                "here; use --loss_type zoo:dft (the same DFT) instead")
    if (getattr(args, "sequence_parallel_size", 1) or 1) > 1:
        _refuse(f"--sequence_parallel_size {args.sequence_parallel_size}", name,
                "each rank holds a slice of the sequence, so a zoo loss would see partial logits")


def patch_trainer_factory(module: ModuleType) -> None:
    """Wrap ``TrainerFactory.get_training_args`` in ``swift.trainers.trainer_factory``."""
    factory = module.TrainerFactory
    original = factory.get_training_args.__func__
    if getattr(original, "__swift_zoo__", False):
        return

    @wraps(original)
    def get_training_args(cls: type, args: Any) -> Any:
        stored = check_arguments(args)
        training_args = original(cls, args)
        if stored:
            setattr(training_args, PLANS_ATTRIBUTE, stored)
        return training_args

    get_training_args.__swift_zoo__ = True
    factory.get_training_args = classmethod(get_training_args)


def patch_rlhf_pipeline(module: ModuleType) -> None:
    """Wrap ``SwiftRLHF._prepare_model_tokenizer`` in ``swift.pipelines.train.rlhf``."""
    pipeline = module.SwiftRLHF
    original = pipeline._prepare_model_tokenizer
    if getattr(original, "__swift_zoo__", False):
        return

    @wraps(original)
    def _prepare_model_tokenizer(self: Any) -> Any:
        args = self.args
        if getattr(args, _REFERENCE_FREE, False) and getattr(args, "ref_model", None) is not None:
            log_once(f"swift zoo: --loss_type {args.loss_type} reads no reference log-probs: "
                     "the reference model is not loaded")
            args.ref_model = None
        return original(self)

    _prepare_model_tokenizer.__swift_zoo__ = True
    pipeline._prepare_model_tokenizer = _prepare_model_tokenizer
    original_prepare = module.prepare_kto_dataset

    @wraps(original_prepare)
    def prepare_kto_dataset(args: Any, train_dataset: Any, val_dataset: Any) -> Any:
        if getattr(args, _NO_KL, False):
            args = copy.copy(args)
            args.loss_type = "apo_zero_unpaired"  # ms-swift's own loss that reads no KL reference point
        return original_prepare(args, train_dataset, val_dataset)

    module.prepare_kto_dataset = prepare_kto_dataset
