""":func:`install`: make ms-swift see the zoo. Imports neither torch nor ms-swift itself.

Each piece attaches to the ms-swift module that holds what it extends, at once if that module is
imported, else right after it is (:func:`swift_zoo.integrations.ms_swift._post_import.when_imported`):

=====================================  ============================================================
ms-swift module                        what the zoo adds
=====================================  ============================================================
``swift.loss.mapping``                 ``loss_map["zoo:<name>"]`` for every zoo loss (and spelling)
``swift.optimizers.mapping``           ``optimizers_map["zoo:<name>"]`` for every zoo optimizer
``swift.trainers.trainer_factory``     argument-time checks (``TrainerFactory.get_training_args``)
``swift.pipelines.train.rlhf``         no reference model for reference-free zoo losses
``swift.rlhf_trainers.dpo_trainer``    zoo paired losses in ``DPOTrainer.dpo_loss``
``swift.rlhf_trainers.cpo_trainer``    zoo reference-free paired losses in ``CPOTrainer.cpo_loss``
``swift.rlhf_trainers.orpo_trainer``   ... in ``ORPOTrainer.odds_ratio_loss``
``swift.rlhf_trainers.kto_trainer``    zoo unpaired losses in ``KTOTrainer.kto_loss``
=====================================  ============================================================

ms-swift's names are never replaced: zoo entries live under ``zoo:``, and a ``zoo:`` key someone
else set is left alone. Every spelling is registered when the table's module loads rather than
looked up lazily: ``loss_map`` and ``optimizers_map`` are plain dicts that ms-swift modules import
by identity (``from swift.loss import loss_map``), so a ``__missing__`` subclass would have to
replace every reference, and ``--loss_type``'s help text lists the dict's keys when the argument
class is defined. An entry costs a two-attribute class; the loss class itself is imported only when
the trainer builds it. The patched methods are private to ms-swift/TRL, so the integration is
tested against ms-swift 4.6 (:data:`TESTED`) and warns on another version.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from collections.abc import Callable
from types import ModuleType

from swift_zoo._registry import REGISTRY
from swift_zoo.integrations.ms_swift._names import host_names
from swift_zoo.integrations.ms_swift._post_import import when_imported

TESTED = ((4, 6), (4, 7))  # ms-swift versions >= 4.6, < 4.7
_LOCK = threading.Lock()
_STATE: dict[str, object] = {"source": None, "announced": False}


def _register(module: ModuleType, attribute: str, kind: str, factory: Callable[[str], type]) -> int:
    table = getattr(module, attribute)
    added = 0
    for host_name in host_names(kind):
        if host_name not in table:
            table[host_name] = factory(host_name)
            added += 1
    return added


def _register_losses(module: ModuleType) -> None:
    from swift_zoo.integrations.ms_swift._sft_loss import loss_class

    _register(module, "loss_map", "loss", loss_class)
    _announce()


def _register_optimizers(module: ModuleType) -> None:
    from swift_zoo.integrations.ms_swift._optimizers import optimizer_class

    _register(module, "optimizers_map", "optimizer", optimizer_class)


def register_names() -> None:
    """(Re)register every zoo name in the ms-swift tables imported so far (new in-process ones too)."""
    for module_name, register in (("swift.loss.mapping", _register_losses),
                                  ("swift.optimizers.mapping", _register_optimizers)):
        module = sys.modules.get(module_name)
        if module is not None:
            register(module)


def _patcher(module_path: str, function: str) -> Callable[[ModuleType], None]:
    def patch(module: ModuleType) -> None:
        getattr(importlib.import_module(module_path), function)(module)

    return patch


_PREFIX = "swift_zoo.integrations.ms_swift."
TARGETS: dict[str, Callable[[ModuleType], None]] = {
    "swift.loss.mapping": _register_losses,
    "swift.optimizers.mapping": _register_optimizers,
    "swift.trainers.trainer_factory": _patcher(_PREFIX + "_arguments", "patch_trainer_factory"),
    "swift.pipelines.train.rlhf": _patcher(_PREFIX + "_arguments", "patch_rlhf_pipeline"),
    "swift.rlhf_trainers.dpo_trainer": _patcher(_PREFIX + "_dpo", "patch"),
    "swift.rlhf_trainers.cpo_trainer": _patcher(_PREFIX + "_cpo_orpo", "patch_cpo"),
    "swift.rlhf_trainers.orpo_trainer": _patcher(_PREFIX + "_cpo_orpo", "patch_orpo"),
    "swift.rlhf_trainers.kto_trainer": _patcher(_PREFIX + "_kto", "patch"),
}


def _announce() -> None:
    if _STATE["announced"]:
        return
    _STATE["announced"] = True
    from swift_zoo.integrations.ms_swift._log import log_once

    losses, optimizers = len(REGISTRY.entries("loss")), len(REGISTRY.entries("optimizer"))
    log_once(f"swift zoo ({_STATE['source']}): {losses} losses as --loss_type zoo:<name> and {optimizers} "
             "optimizers as --optimizer zoo:<name> (docs/ms_swift.md)")


def _check_version() -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("ms-swift")
    except PackageNotFoundError:
        return
    numbers = tuple(int(part) for part in found.split(".")[:2] if part.isdigit())
    low, high = TESTED
    if not low <= numbers < high:
        warnings.warn(f"swift zoo's ms-swift integration is tested with ms-swift >={'.'.join(map(str, low))},"
                      f"<{'.'.join(map(str, high))}; found {found}: it patches private methods that may differ",
                      stacklevel=3)


def install(source: str = "swift_zoo.integrations.ms_swift") -> bool:
    """Attach the zoo to ms-swift (now or when its modules are imported); ``False`` if already done.

    :param source: who asked, shown in the one log line (``--external_plugins`` or ``swift-zoo-ms-swift``).
    """
    with _LOCK:
        if _STATE["source"] is not None:
            return False
        _STATE["source"] = source
    _check_version()
    for module_name, callback in TARGETS.items():
        when_imported(module_name, callback)
    return True
