"""The hooks a swift zoo plugin implements. This docstring is the plugin author's quickstart.

A plugin is a light module named by an entry point of the ``swift_zoo`` group::

    # pyproject.toml
    [project.entry-points.swift_zoo]
    my_losses = "my_loss_plugin._plugin"

    # my_loss_plugin/_plugin.py  -- no torch import here: listing must stay cheap
    from swift_zoo import LossSpec, hookimpl

    @hookimpl
    def swift_zoo_register_losses():
        return [LossSpec("focal", "my_loss_plugin.focal:FocalLoss", summary="Focal loss")]

Every hook takes no argument (arguments may be added later without breaking plugins) and returns
an iterable of specs, or of classes carrying a ``name`` attribute. A hook may be left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

PROJECT_NAME = "swift_zoo"
ENTRY_POINT_GROUP = "swift_zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def swift_zoo_register_losses() -> Iterable[Any]:
    """Return the losses this plugin provides: :class:`LossSpec` records or ``BaseLoss`` classes."""


@hookspec
def swift_zoo_register_optimizers() -> Iterable[Any]:
    """Return the optimizers this plugin provides: :class:`OptimizerSpec` records or classes."""


@hookspec
def swift_zoo_register_schedulers() -> Iterable[Any]:
    """Return the LR schedules this plugin provides: :class:`SchedulerSpec` records."""


@hookspec
def swift_zoo_register_advantages() -> Iterable[Any]:
    """Return the advantage estimators this plugin provides: :class:`AdvantageSpec` records or classes."""
