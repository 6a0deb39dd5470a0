"""swift zoo: losses and optimizers for LLM training as pip-installable plugins.

``import swift_zoo`` is cheap: the torch-dependent names (``BaseLoss``, ``BaseAdvantage``, ``TensorInput``,
``UnitLosses``, ``LossExample``) and subpackages (``swift_zoo.ops``, ``swift_zoo.testing``...) are imported on
first access.
"""

from swift_zoo.__about__ import __version__
from swift_zoo._capability import DistributedCapability, Support
from swift_zoo._config import (
    TrainingComponents,
    build_advantage,
    build_from_config,
    build_loss,
    build_optimizer,
    build_scheduler,
    check_training_args,
    load_config,
)
from swift_zoo._equivalence import Equivalence
from swift_zoo._errors import (
    AmbiguousNameError,
    ConfigError,
    ConformanceError,
    InvalidPluginError,
    LossInputError,
    NonFiniteGradientError,
    OptimizerModeError,
    OptimizerStateError,
    PluginImportError,
    PluginLoadError,
    SwiftZooError,
    UnknownAdvantageError,
    UnknownLossError,
    UnknownNameError,
    UnknownOptimizerError,
    UnknownSchedulerError,
    UnsupportedShardingError,
)
from swift_zoo._hookspecs import hookimpl, hookspec
from swift_zoo._registry import (
    ADVANTAGE_MAPPING,
    LOSS_MAPPING,
    OPTIMIZER_MAPPING,
    REGISTRY,
    SCHEDULER_MAPPING,
    Entry,
    PluginRecord,
    SwiftZooPluginWarning,
    get_advantage,
    get_loss,
    get_optimizer,
    get_scheduler,
    list_advantages,
    list_losses,
    list_optimizers,
    list_plugins,
    list_schedulers,
    register_advantage,
    register_loss,
    register_optimizer,
    register_scheduler,
    reload_plugins,
)
from swift_zoo._specs import AdvantageSpec, LossSpec, OptimizerSpec, SchedulerSpec, Spec, normalize_name

_LAZY = {
    "BaseAdvantage": "swift_zoo.advantages",
    "BaseLoss": "swift_zoo.losses",
    "LossExample": "swift_zoo.losses",
    "TensorInput": "swift_zoo.losses",
    "UnitLosses": "swift_zoo.losses",
}

__all__ = [
    "ADVANTAGE_MAPPING",
    "LOSS_MAPPING",
    "OPTIMIZER_MAPPING",
    "REGISTRY",
    "SCHEDULER_MAPPING",
    "AdvantageSpec",
    "AmbiguousNameError",
    "BaseAdvantage",
    "BaseLoss",
    "ConfigError",
    "ConformanceError",
    "DistributedCapability",
    "Entry",
    "Equivalence",
    "InvalidPluginError",
    "LossExample",
    "LossInputError",
    "LossSpec",
    "NonFiniteGradientError",
    "OptimizerModeError",
    "OptimizerSpec",
    "OptimizerStateError",
    "PluginImportError",
    "PluginLoadError",
    "PluginRecord",
    "SchedulerSpec",
    "Spec",
    "Support",
    "SwiftZooError",
    "SwiftZooPluginWarning",
    "TensorInput",
    "TrainingComponents",
    "UnitLosses",
    "UnknownAdvantageError",
    "UnknownLossError",
    "UnknownNameError",
    "UnknownOptimizerError",
    "UnknownSchedulerError",
    "UnsupportedShardingError",
    "__version__",
    "build_advantage",
    "build_from_config",
    "build_loss",
    "build_optimizer",
    "build_scheduler",
    "check_training_args",
    "get_advantage",
    "get_loss",
    "get_optimizer",
    "get_scheduler",
    "hookimpl",
    "hookspec",
    "list_advantages",
    "list_losses",
    "list_optimizers",
    "list_plugins",
    "list_schedulers",
    "load_config",
    "normalize_name",
    "register_advantage",
    "register_loss",
    "register_optimizer",
    "register_scheduler",
    "reload_plugins",
]


#: Subpackages reachable as attributes (``swift_zoo.ops.sequence_logps``) without importing them up front.
_SUBPACKAGES = ("advantages", "integrations", "losses", "ops", "optim", "params", "testing")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"swift_zoo.{name}")
    message = f"module 'swift_zoo' has no attribute {name!r}"
    raise AttributeError(message)
