"""Keeping TRL from loading a reference model that a reference-free zoo loss never reads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any


@contextlib.contextmanager
def no_reference_model(trainer: Any, module: ModuleType) -> Iterator[None]:
    """While the TRL trainer's ``__init__`` runs, its reference-model load returns ``None``.

    ``DPOTrainer.__init__`` and ``KTOTrainer.__init__`` (TRL 1.16, ``trl/trainer/dpo_trainer.py`` line 927,
    ``kto_trainer.py`` line 938) build a missing ``ref_model`` with ``create_model_from_path``, looked up in
    their module. The policy itself may be loaded with the same function earlier in ``__init__`` (when
    ``model`` is a path), before ``transformers.Trainer.__init__`` sets ``trainer.model``; the reference
    load is the call that comes after it. With ``ref_model = None`` TRL skips every later use of it
    (dropout, fused head, ``accelerator.prepare``). The module attribute is restored on exit.
    """
    original = module.create_model_from_path

    def create_model_from_path(*args: Any, **kwargs: Any) -> Any:
        if "model" in vars(trainer):  # transformers.Trainer.__init__ has run: this is the reference model
            return None
        return original(*args, **kwargs)

    module.create_model_from_path = create_model_from_path
    try:
        yield
    finally:
        module.create_model_from_path = original
