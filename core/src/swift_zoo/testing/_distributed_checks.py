"""The optimizer checks about distributed capability: the record is the spec's, and declared FSDP2 support holds.

* :func:`check_distributed_record` -- the class's ``distributed`` attribute (what
  :class:`~swift_zoo.optim.ZooOptimizer` enforces at the first step) is the record its spec declares (what
  ``swift-zoo info`` and ``docs/distributed.md`` show).
* :func:`check_fsdp2_equivalence` -- an optimizer whose record says FSDP2 ``supported`` is held to it: two gloo
  processes train the suite's tiny LM under ``fully_shard`` (the block and the root) on the same batches and
  must end with one process's parameters -- bitwise for an element-wise optimizer (``elementwise = True``)
  without whole-tensor sums (:func:`~swift_zoo.optim.bitwise_under_fsdp2`), within :data:`FSDP2_RTOL` normwise
  per parameter otherwise. Skipped, saying why, when the record does not
  claim FSDP2 support or gloo is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from swift_zoo._errors import ConformanceError
from swift_zoo.testing._models import tiny_lm, tiny_lm_batch, tiny_lm_loss
from swift_zoo.testing._report import CheckSkipped
from swift_zoo.testing._subject import OptimizerSubject, enter_training_mode, optimizer_subject
from swift_zoo.testing._threads import runs_single_threaded

FSDP2_STEPS = 4
FSDP2_RTOL = 1e-6
FSDP2_WORLD_SIZE = 2


def declared_record(subject: OptimizerSubject) -> Any:
    """The :class:`~swift_zoo.DistributedCapability` the subject's spec declares (the class's attribute for an
    unregistered class), or ``None``."""
    if subject.registered_name is not None:
        from swift_zoo._registry import REGISTRY

        return REGISTRY.resolve("optimizer", subject.registered_name).spec.distributed
    return getattr(subject.cls, "distributed", None)


def check_distributed_record(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """The class's ``distributed`` record equals its spec's (a registered optimizer)."""
    name = "check_distributed_record"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    if subject.registered_name is None:
        raise CheckSkipped("not a registered optimizer: no spec to compare the class's record with")
    spec_record = declared_record(subject)
    class_record = getattr(subject.cls, "distributed", None)
    if class_record is None:
        message = (
            f"expected {subject.cls.__name__}.distributed to be the spec's record ({spec_record.summary()}), found no "
            "'distributed' attribute: subclass swift_zoo.optim.ZooOptimizer and set distributed = <the record the "
            "spec uses>, so the first step enforces what the spec declares"
        )
        raise ConformanceError(name, subject.label, message)
    if class_record != spec_record:
        found = class_record.summary() if hasattr(class_record, "summary") else repr(class_record)
        message = (
            f"expected {subject.cls.__name__}.distributed to equal the spec's record ({spec_record.summary()}), found "
            f"{found}: the docs would show one thing and the optimizer enforce another"
        )
        raise ConformanceError(name, subject.label, message)
    return f"class and spec agree: {spec_record.summary()}"


# ----------------------------------------------------------------------------- FSDP2
def _importable(cls: type) -> str | None:
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return None
    return f"{cls.__module__}:{cls.__qualname__}"


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[dict[str, torch.Tensor]]:
    tokens = tiny_lm_batch(0)
    first_grads: list[dict[str, torch.Tensor]] = []
    for step in range(FSDP2_STEPS):
        optimizer.zero_grad(set_to_none=True)
        tiny_lm_loss(model, tokens).backward()
        if step == 0:
            first_grads.append({n: _whole(p.grad) for n, p in model.named_parameters() if p.grad is not None})
        optimizer.step()
    return first_grads


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().clone()


def _build(target: Any, model: torch.nn.Module, kwargs: Mapping[str, Any],
           hooks: tuple[str, ...]) -> torch.optim.Optimizer:
    from swift_zoo._config import build_optimizer

    optimizer = build_optimizer(target, model, **dict(kwargs))
    enter_training_mode(optimizer, hooks)
    return optimizer


def fsdp2_rank(rank: int, world_size: int, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """What each spawned rank runs: the tiny LM under ``fully_shard``, :data:`FSDP2_STEPS` steps."""
    import importlib

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    module, _, attr = payload["target"].partition(":")
    cls: Any = importlib.import_module(module)
    for part in attr.split("."):
        cls = getattr(cls, part)
    mesh = init_device_mesh("cpu", (world_size,))
    model = tiny_lm(0)
    fully_shard(model.block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optimizer = _build(cls, model, payload["kwargs"], tuple(payload["hooks"]))
    grads = _train(model, optimizer)
    params = {n: _whole(p) for n, p in model.named_parameters()}
    return {"params": params, "grads": grads[0]} if rank == 0 else None


@runs_single_threaded
def check_fsdp2_equivalence(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """Declared FSDP2 support holds: 2 gloo ranks under ``fully_shard`` end with one process's parameters."""
    name = "check_fsdp2_equivalence"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    record = declared_record(subject)
    support = getattr(record, "fsdp2", None)
    if support is None or not support.supported:
        status = "no record" if support is None else repr(support.status)
        raise CheckSkipped(f"declares FSDP2 {status}: only declared support is held to one process's result")
    instance = subject.build(torch.nn.Linear(4, 4))
    built = getattr(instance, "distributed", record)
    if not built.fsdp2.supported:  # an option can narrow the record (adamw's cautious=True needs whole-tensor sums)
        message = (f"built with {dict(subject.kwargs)}, the optimizer declares FSDP2 {built.fsdp2.status!r}: only "
                   "declared support is held to one process's result")
        raise CheckSkipped(message)
    from swift_zoo.testing._spawn import gloo_unavailable_reason, run_on_ranks

    reason = gloo_unavailable_reason()
    if reason is not None:
        raise CheckSkipped(f"needs torch.distributed with gloo: {reason}")
    target = _importable(subject.cls)
    if target is None:
        message = (
            f"expected {subject.cls.__qualname__} to be importable by the spawned ranks (module "
            f"{subject.cls.__module__!r}); define it at module level in an importable module"
        )
        raise ConformanceError(name, subject.label, message)
    payload = {"target": target, "kwargs": dict(subject.kwargs), "hooks": list(subject.hooks)}
    ranked = run_on_ranks(f"{__name__}:fsdp2_rank", payload, world_size=FSDP2_WORLD_SIZE)[0]
    model = tiny_lm(0)
    reference_grads = _train(model, _build(subject.cls, model, subject.kwargs, subject.hooks))[0]
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrong_grads = sorted(n for n, g in reference_grads.items() if not torch.equal(ranked["grads"][n], g))
    if wrong_grads:
        message = f"expected FSDP2's first gradients to equal one process's, found {wrong_grads} differ (not the optimizer)"
        raise ConformanceError(name, subject.label, message)
    from swift_zoo.optim import bitwise_under_fsdp2

    got = ranked["params"]
    if bitwise_under_fsdp2(instance):
        differing = sorted(n for n in reference if not torch.equal(got[n], reference[n]))
        if differing:
            message = (
                f"expected bitwise one process's parameters after {FSDP2_STEPS} steps on {FSDP2_WORLD_SIZE} FSDP2 "
                f"ranks (the optimizer says elementwise = True and no whole_tensor_sums), found {differing} differ"
            )
            raise ConformanceError(name, subject.label, message)
        return f"{FSDP2_WORLD_SIZE} FSDP2 ranks, {FSDP2_STEPS} steps: bitwise one process's parameters"
    worst, where = max((float((got[n] - reference[n]).norm() / reference[n].norm()), n) for n in reference)
    if not worst <= FSDP2_RTOL:
        message = (
            f"expected one process's parameters within {FSDP2_RTOL:g} normwise after {FSDP2_STEPS} steps on "
            f"{FSDP2_WORLD_SIZE} FSDP2 ranks, found {where!r} off by {worst:.3g}: a whole-matrix rule computed on "
            "row shards? (see swift_zoo.optim.MatrixOwners)"
        )
        raise ConformanceError(name, subject.label, message)
    return f"{FSDP2_WORLD_SIZE} FSDP2 ranks, {FSDP2_STEPS} steps: within {worst:.2g} of one process"
