"""What each rank runs for the FSDP2 tests, and the single-process runs they are compared with.

Every registered optimizer (the cases of :func:`_optim_cases.optimizer_cases`, built with the class's
``example_kwargs()``) trains :class:`_tiny_lm.BlockLM` for :data:`STEPS` steps on the same batches on every
rank, the model ``fully_shard``-ed per block and at the root over a 1-D mesh. FSDP2 averages the ranks'
identical gradients; the tests check those gradients equal the single-process ones, so what remains is the
optimizer's doing.

Checkpoints: the run saves model and optimizer with ``torch.distributed.checkpoint`` after
:data:`SAVE_AT` steps (``get_model_state_dict`` / ``get_optimizer_state_dict``). A resumed run builds a fresh
model and optimizer at its own world size, loads one (``set_*_state_dict``) and runs the remaining steps; it
must end where the uninterrupted single-process run ends.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import torch
from _optim_cases import CONTROL, OptimizerCase, optimizer_cases
from _tiny_lm import build_block_lm, lm_batch

import swift_zoo

STEPS = 4
SAVE_AT = 2
ROWS = 3


def fsdp_cases() -> list[OptimizerCase]:
    """One case per registered optimizer (and its default-choices variant), no control."""
    return [case for case in optimizer_cases() if case.name != CONTROL]


def loss_at(model: torch.nn.Module, step: int) -> torch.Tensor:
    batch = lm_batch(ROWS, seed=500 + step)
    return swift_zoo.build_loss("cross_entropy")(model(batch.input_ids), batch.labels)


def build_optimizer(case: OptimizerCase, model: torch.nn.Module) -> torch.optim.Optimizer:
    optimizer = swift_zoo.build_optimizer(case.name, model, **case.kwargs)
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()  # schedule-free: steps only in train mode
    return optimizer


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: range,
          grads: list[dict[str, torch.Tensor]] | None = None) -> None:
    for step in steps:
        optimizer.zero_grad(set_to_none=True)
        loss_at(model, step).backward()
        if grads is not None:
            grads.append({n: _full(p.grad) for n, p in model.named_parameters()})
        optimizer.step()


def _full(tensor: torch.Tensor) -> torch.Tensor:
    full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
    return full.detach().clone()


def full_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter whole (a collective under FSDP2: every rank calls it)."""
    return {name: _full(p) for name, p in model.named_parameters()}


# ----------------------------------------------------------------------------- one process
def single_process(case: OptimizerCase, steps: int = STEPS) -> dict[str, Any]:
    """The reference: one process, no torch.distributed."""
    model = build_block_lm()
    optimizer = build_optimizer(case, model)
    grads: list[dict[str, torch.Tensor]] = []
    train(model, optimizer, range(steps), grads)
    return {"params": full_params(model), "grads": grads}


def resume_single_process(case: OptimizerCase, torch_save_file: Path) -> dict[str, Any]:
    """2 -> 1: a DCP checkpoint converted with ``dcp_to_torch_save``, read with ``weights_only=True``, loaded
    into a single-process model and optimizer (no process group), then the remaining steps."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    saved = torch.load(torch_save_file, weights_only=True)
    model = build_block_lm(seed=1)  # different weights: the checkpoint must bring them
    model.load_state_dict(saved["model"])
    optimizer = build_optimizer(case, model)
    set_optimizer_state_dict(model, optimizer, saved["optim"])
    train(model, optimizer, range(SAVE_AT, STEPS))
    return {"params": full_params(model)}


# ----------------------------------------------------------------------------- ranks
def sharded_model(mesh: Any) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = build_block_lm()
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Path, mesh: Any) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
    dcp.save(state, checkpoint_id=str(path), process_group=mesh.get_group())


def load_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Path, mesh: Any) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
    dcp.load(state, checkpoint_id=str(path), process_group=mesh.get_group())
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optim"])


def fsdp_run(case: OptimizerCase, mesh: Any, *, save: Path | None = None) -> dict[str, Any]:
    """:data:`STEPS` steps under FSDP2 on ``mesh``, saving after :data:`SAVE_AT` when ``save`` is given."""
    model = sharded_model(mesh)
    optimizer = build_optimizer(case, model)
    grads: list[dict[str, torch.Tensor]] = []
    train(model, optimizer, range(SAVE_AT), grads)
    if save is not None:
        save_checkpoint(model, optimizer, save, mesh)
    train(model, optimizer, range(SAVE_AT, STEPS), grads)
    return {"params": full_params(model), "grads": grads}


def fsdp_resume(case: OptimizerCase, mesh: Any, load: Path) -> dict[str, Any]:
    """A fresh sharded model and optimizer on ``mesh`` load the checkpoint at ``load`` and finish the run."""
    model = sharded_model(mesh)
    optimizer = build_optimizer(case, model)
    load_checkpoint(model, optimizer, load, mesh)
    train(model, optimizer, range(SAVE_AT, STEPS))
    return {"params": full_params(model)}


def guarded(function: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return function(*args, **kwargs)
    except Exception:
        return {"error": traceback.format_exc()}
