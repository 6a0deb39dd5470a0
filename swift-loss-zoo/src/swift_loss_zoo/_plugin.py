"""The ``swift_zoo`` entry point of swift-loss-zoo. Torch-free: listing imports no loss or estimator."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from swift_loss_zoo import _catalogue
from swift_zoo import hookimpl


def _catalogue_modules() -> list[ModuleType]:
    infos = sorted(pkgutil.iter_modules(_catalogue.__path__), key=lambda m: m.name)
    return [importlib.import_module(f"{_catalogue.__name__}.{info.name}") for info in infos]


@hookimpl
def swift_zoo_register_losses():
    """Every loss of the zoo: the ``SPECS`` of each family module in ``swift_loss_zoo._catalogue``."""
    return [spec for module in _catalogue_modules() for spec in getattr(module, "SPECS", ())]


@hookimpl
def swift_zoo_register_advantages():
    """Every advantage estimator of the zoo: the ``ADVANTAGE_SPECS`` of the catalogue modules."""
    return [spec for module in _catalogue_modules() for spec in getattr(module, "ADVANTAGE_SPECS", ())]
