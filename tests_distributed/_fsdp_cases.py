"""What each rank runs for the FSDP2 tests, and the single-process runs they are compared with.

Every registered optimizer (the cases of :func:`_optim_cases.optimizer_cases`, built with the class's
``example_kwargs()``, a few with :data:`OVERRIDES`, plus the :data:`VARIANTS`) trains :class:`_tiny_lm.BlockLM` for :data:`STEPS` steps on the same batches on every
rank, the model ``fully_shard``-ed per block and at the root over a 1-D mesh. FSDP2 averages the ranks'
identical gradients; the tests check those gradients equal the single-process ones, so what remains is the
optimizer's doing.

Checkpoints: the run saves model and optimizer with ``torch.distributed.checkpoint`` after
:data:`SAVE_AT` steps (``get_model_state_dict`` / ``get_optimizer_state_dict``). A resumed run builds a fresh
model and optimizer at its own world size, loads one (``set_*_state_dict``) and runs the remaining steps; it
must end where the uninterrupted single-process run ends.

One spawn of four processes (:func:`run`) does it all: a two-rank mesh on ranks 0 and 1 (a subgroup) trains
and saves; the four-rank mesh trains and saves, and resumes the two-rank checkpoint (2 -> 4); the two-rank mesh
resumes the four-rank checkpoint (4 -> 2). The parent resumes the two-rank checkpoint on one process (2 -> 1).
The same spawn checks the exchange helpers on uneven and empty shards (:func:`exchange_checks`) and the
refusals (:func:`refusal_checks`).
"""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path
from typing import Any

import torch
from _optim_cases import CONTROL, OptimizerCase, optimizer_cases
from _tiny_lm import Block, build_block_lm, lm_batch

import swift_zoo

STEPS = 4
SAVE_AT = 2
ROWS = 3

#: kwargs on top of the example kwargs where those leave the sharded code path idle on this model: 8-bit states
#: on the 144-element matrices (q/k projections, expert stacks) with quantisation blocks cut by shard boundaries,
#: and a QK-clip threshold that some heads exceed at some steps (their logits here are 0.5-1.3)
OVERRIDES: dict[str, dict[str, Any]] = {
    "adamw_8bit": {"block_size": 16},
    "muon_clip": {"qk_clip_threshold": 0.7},
}
#: extra cases: an option whose rule reads a whole-tensor sum (the cautious mask's count of kept elements), with the
#: eager rule FSDP2 runs (fused=True compiles it on one process: its record says FSDP2 untested)
VARIANTS: dict[str, dict[str, Any]] = {
    "adamw": {"cautious": True, "fused": False},
    "lion": {"cautious": True},
}


def fsdp_cases() -> list[OptimizerCase]:
    """One case per registered optimizer (and its default-choices variant), with :data:`OVERRIDES`, plus the
    :data:`VARIANTS`; no control."""
    cases = []
    for case in optimizer_cases():
        if case.name == CONTROL:
            continue
        short = case.name.rpartition(":")[2]
        cases.append(dataclasses.replace(case, kwargs={**case.kwargs, **OVERRIDES.get(short, {})}))
        if short in VARIANTS and case.case_id == case.name:
            extra = VARIANTS[short]
            suffix = ",".join(key for key, value in sorted(extra.items()) if value is True)
            cases.append(dataclasses.replace(case, case_id=f"{case.name}+{suffix}", kwargs={**case.kwargs, **extra}))
    return cases


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
    return finished(model, optimizer, grads=grads)


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
    return finished(model, optimizer)


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


def finished(model: torch.nn.Module, optimizer: torch.optim.Optimizer, **extra: Any) -> dict[str, Any]:
    """Final parameters, and for schedule-free optimizers also the averaged ones (after ``eval()``)."""
    result = {"params": full_params(model), **extra}
    if callable(getattr(optimizer, "eval", None)):
        optimizer.eval()
        result["eval_params"] = full_params(model)
    return result


def fsdp_run(case: OptimizerCase, mesh: Any, *, save: Path | None = None) -> dict[str, Any]:
    """:data:`STEPS` steps under FSDP2 on ``mesh``, saving after :data:`SAVE_AT` when ``save`` is given."""
    model = sharded_model(mesh)
    optimizer = build_optimizer(case, model)
    grads: list[dict[str, torch.Tensor]] = []
    train(model, optimizer, range(SAVE_AT), grads)
    if save is not None:
        save_checkpoint(model, optimizer, save, mesh)
    train(model, optimizer, range(SAVE_AT, STEPS), grads)
    return finished(model, optimizer, grads=grads)


def fsdp_resume(case: OptimizerCase, mesh: Any, load: Path) -> dict[str, Any]:
    """A fresh sharded model and optimizer on ``mesh`` load the checkpoint at ``load`` and finish the run."""
    model = sharded_model(mesh)
    optimizer = build_optimizer(case, model)
    load_checkpoint(model, optimizer, load, mesh)
    train(model, optimizer, range(SAVE_AT, STEPS))
    return finished(model, optimizer)


def is_elementwise(case: OptimizerCase) -> bool:
    return bool(getattr(swift_zoo.get_optimizer(case.name), "elementwise", False))


def bitwise(case: OptimizerCase) -> bool:
    """Whether the case's optimizer, built with its kwargs (an option may change it), promises bitwise one
    process's parameters under FSDP2."""
    from swift_zoo.optim import bitwise_under_fsdp2

    return bitwise_under_fsdp2(swift_zoo.build_optimizer(case.name, torch.nn.Linear(2, 2), **case.kwargs))


def without_weight_decay(case: OptimizerCase) -> OptimizerCase:
    """``case`` with ``weight_decay=0``: a flat parameter mixes norms, biases and matrices, so role-based
    weight-decay exclusion cannot apply to it; without decay the comparison is about the update rule."""
    return dataclasses.replace(case, kwargs={**case.kwargs, "weight_decay": 0.0})


def fsdp1_run(case: OptimizerCase, mesh: Any) -> dict[str, Any]:
    """:data:`STEPS` steps under FSDP1 with flat parameters (``use_orig_params=False``), each block and the root
    wrapped: the optimizer sees 1-D shards of each wrapped module's concatenated parameters. Run with
    :func:`without_weight_decay`."""
    case = without_weight_decay(case)
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    model = FullyShardedDataParallel(build_block_lm(), use_orig_params=False, process_group=mesh.get_group(),
                                     device_id=torch.device("cpu"), auto_wrap_policy=ModuleWrapPolicy({Block}))
    optimizer = build_optimizer(case, model)
    train(model, optimizer, range(STEPS))
    if callable(getattr(optimizer, "eval", None)):
        optimizer.eval()
    with FullyShardedDataParallel.summon_full_params(model):
        params = {name.replace("_fsdp_wrapped_module.", ""): p.detach().clone() for name, p in model.named_parameters()}
    return {"params" if not callable(getattr(optimizer, "eval", None)) else "eval_params": params}


def guarded(function: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``function``'s result, or the error it raised (DCP's ``CheckpointException`` too, a ``BaseException`` that
    every rank raises alike), so one optimizer's failure is its own test's and the spawn goes on."""
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        return function(*args, **kwargs)
    except (Exception, CheckpointException):
        return {"error": traceback.format_exc()}


def case_dir(root: Path, case: OptimizerCase, world: int) -> Path:
    return root / case.case_id.replace(":", "__").replace("+", "_") / f"w{world}"


def run(rank: int, world_size: int, payload: dict[str, Any]) -> dict[Any, Any] | None:
    """Everything on four ranks (see the module docstring); rank 0 returns the results."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

    root = Path(payload["dir"])
    selected = payload.get("cases")
    cases = [c for c in fsdp_cases() if selected is None or c.case_id in selected]
    mesh = init_device_mesh("cpu", (world_size,))
    pair = dist.new_group([0, 1])
    pair_mesh = DeviceMesh.from_group(pair, "cpu") if rank < 2 else None
    results: dict[Any, Any] = {}
    if pair_mesh is not None:
        for case in cases:
            results["run", 2, case.case_id] = guarded(fsdp_run, case, pair_mesh, save=case_dir(root, case, 2))
    dist.barrier()
    for case in cases:
        results["run", world_size, case.case_id] = guarded(fsdp_run, case, mesh, save=case_dir(root, case, world_size))
        results["resume", "2->4", case.case_id] = guarded(fsdp_resume, case, mesh, case_dir(root, case, 2))
    dist.barrier()
    if pair_mesh is not None:
        for case in cases:
            results["resume", "4->2", case.case_id] = guarded(fsdp_resume, case, pair_mesh,
                                                               case_dir(root, case, world_size))
        results["exchange", 2] = guarded(exchange_checks, pair_mesh)
    dist.barrier()
    for case in cases:
        if is_elementwise(case):
            results["fsdp1", case.case_id] = guarded(fsdp1_run, case, mesh)
    results["exchange", world_size] = guarded(exchange_checks, mesh)
    results["refusals",] = guarded(refusal_checks, mesh)
    return results if rank == 0 else None


# ----------------------------------------------------------------------------- exchange
EXCHANGE_ROWS = (13, 3, 1, 12, 18)  # uneven on 2 and 4 ranks; fewer rows than ranks (empty shards)


def exchange_checks(mesh: Any) -> dict[str, Any]:
    """``MatrixOwners.gather`` / ``scatter`` and ``sum_over_shards`` on Shard(0) DTensors of awkward row
    counts: every owner gets the exact whole tensor, every rank its exact rows back; the ledger counts
    exactly the bytes sent to other ranks."""
    from torch.distributed.tensor import Shard, distribute_tensor

    from swift_zoo.optim import MatrixOwners, communication_ledger, placeholder, sum_over_shards

    generator = torch.Generator().manual_seed(7)
    fulls = [torch.randn(rows, 5, generator=generator) for rows in EXCHANGE_ROWS]
    fulls.append(torch.randn(6, 2, 3, generator=generator))  # a 3-D tensor
    params = [distribute_tensor(f.clone(), mesh, [Shard(0)]) for f in fulls]
    owners = MatrixOwners()
    owners.assign(params)
    me = mesh.get_local_rank()
    checks: dict[str, Any] = {"owners": [owners.owner_of(p) for p in params], "loads": owners.loads()}
    with communication_ledger() as ledger:
        gathered = owners.gather(params, [p.to_local().to(torch.bfloat16) for p in params])
    checks["gather_bytes"] = ledger.bytes_sent.get("all_to_all", 0.0)
    checks["gather_exact"] = all(
        (got is None) == (owner != me) and (got is None or torch.equal(got, full.to(torch.bfloat16)))
        for got, full, owner in zip(gathered, fulls, checks["owners"]))
    outputs = [placeholder(f.shape, f.dtype) if got is None else f * 2 for f, got in zip(fulls, gathered)]
    rows_back = owners.scatter(params, outputs)
    whole_back = owners.scatter(params, outputs, rows=False)
    checks["scatter_rows_exact"] = all(torch.equal(b, p.to_local() * 2) for b, p in zip(rows_back, params))
    checks["scatter_whole_exact"] = all(torch.equal(b, f * 2) for b, f in zip(whole_back, fulls))
    sums = sum_over_shards(params, [p.to_local().sum(dim=0) for p in params])
    checks["sums_close"] = all(torch.allclose(s, f.sum(dim=0), rtol=1e-6, atol=1e-6) for s, f in zip(sums, fulls))
    from swift_optim_zoo._elementwise import ShardSums

    with communication_ledger() as ledger:  # an element-wise rule's whole-tensor sum (LAMB's norms, ...)
        whole = ShardSums(params[0]).sum(params[0].to_local())
    checks["shard_sum_exact"] = bool(torch.allclose(whole, fulls[0].sum(), rtol=1e-6, atol=1e-6))
    checks["shard_sum_bytes"] = ledger.bytes_sent.get("all_reduce", 0.0)
    return checks


# ----------------------------------------------------------------------------- refusals
def refusal_checks(mesh: Any) -> dict[str, str]:
    """What whole-matrix methods say where they cannot be correct, and what element-wise ones do there:
    FSDP1 flat parameters, a Shard(1) layout, a 2-D mesh. ``"ok"`` when an element-wise method stepped."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.tensor import Shard, distribute_tensor

    def attempt(build: Any) -> str:
        try:
            optimizer, set_grads = build()
            set_grads()
            optimizer.step()
            return "ok"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    def fsdp1(name: str) -> Any:
        def build() -> Any:
            model = FullyShardedDataParallel(build_block_lm(), use_orig_params=False,
                                             process_group=mesh.get_group(), device_id=torch.device("cpu"))
            return swift_zoo.build_optimizer(name, model), lambda: loss_at(model, 0).backward()
        return build

    def laid_out(name: str, placements: list[Any], layout_mesh: Any) -> Any:
        def build() -> Any:
            torch.manual_seed(0)
            weight = torch.nn.Parameter(distribute_tensor(torch.randn(8, 6), layout_mesh, placements))

            def set_grads() -> None:
                weight.grad = distribute_tensor(torch.randn(8, 6), layout_mesh, placements)
            return swift_zoo.build_optimizer(name, [weight]), set_grads
        return build

    found = {
        "fsdp1/muon": attempt(fsdp1("muon")),
        "fsdp1/galore_adamw": attempt(fsdp1("galore_adamw")),
        "shard1/muon": attempt(laid_out("muon", [Shard(1)], mesh)),
        "shard1/soap": attempt(laid_out("soap", [Shard(1)], mesh)),
        "shard1/lion": attempt(laid_out("lion", [Shard(1)], mesh)),
    }
    if dist.get_world_size() == 4:
        mesh_2d = init_device_mesh("cpu", (2, 2))
        found["mesh2d/muon"] = attempt(laid_out("muon", [Shard(0), Shard(0)], mesh_2d))
        found["mesh2d/lion"] = attempt(laid_out("lion", [Shard(0), Shard(0)], mesh_2d))
    return found
