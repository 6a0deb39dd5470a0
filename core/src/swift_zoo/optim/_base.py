"""``ZooOptimizer``: the frame every swift zoo optimizer steps through. Its docstring is the contract."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch

from swift_zoo._capability import WRAPPERS, DistributedCapability
from swift_zoo._errors import (
    ConfigError,
    NonFiniteGradientError,
    OptimizerStateError,
    UnsupportedShardingError,
)
from swift_zoo.optim._owner_state import export_owner_state, import_owner_state
from swift_zoo.optim._sharding import MatrixOwners, record_collective
from swift_zoo.optim._state_dtypes import restore_state_dtypes
from swift_zoo.optim._wrappers import dtensor_layout_problem, is_dtensor, local_tensor, wrapper_of

NONFINITE_ENV = "SWIFT_ZOO_NONFINITE_GRADS"
NONFINITE_POLICIES = ("skip", "raise")
STATE_TAG = "zoo_optimizer"


class NonFiniteGradientWarning(UserWarning):
    """A step was skipped because a gradient held NaN or Inf (policy ``"skip"``)."""


class UntestedShardingWarning(UserWarning):
    """An optimizer runs on sharded parameters under a wrapper its capability record does not declare."""


def default_nonfinite_policy() -> str:
    """The policy from ``SWIFT_ZOO_NONFINITE_GRADS`` (``skip`` when unset)."""
    value = os.environ.get(NONFINITE_ENV, "skip").strip().lower() or "skip"
    if value not in NONFINITE_POLICIES:
        message = f"{NONFINITE_ENV} must be one of {', '.join(NONFINITE_POLICIES)}, got {value!r}"
        raise ConfigError(message, key=NONFINITE_ENV, expected=" or ".join(NONFINITE_POLICIES), found=value)
    return value


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every element of every tensor is finite, from one sum per tensor.

    A sum is NaN or Inf whenever one element is (an Inf, or Infs of both signs, never cancel into a finite
    value); finite elements whose sum overflows also give Inf, so a non-finite sum is confirmed element-wise
    before it counts. A sum reads each element once; the L2 norms this used before (``_foreach_norm``) took about
    1.2x as long on the CPU (``benchmarks/bench_nonfinite_check.py``). float16 and bfloat16 tensors are
    summed in float32 (a float16 sum overflows at 65504, which would send most checks to the element-wise path).
    """
    sums: list[torch.Tensor] = []
    checked: list[torch.Tensor] = []
    for tensor in tensors:
        if tensor.is_sparse:
            tensor = tensor.coalesce().values()
        if tensor.numel():
            wide = torch.float32 if tensor.dtype in (torch.float16, torch.bfloat16) else None
            sums.append(tensor.sum(dtype=wide))
            checked.append(tensor)
    if not sums:
        return True
    by_device: dict[torch.device, list[int]] = {}
    for index, value in enumerate(sums):
        by_device.setdefault(value.device, []).append(index)
    for indices in by_device.values():
        values = torch.stack([sums[i].float() for i in indices])  # float32: every backend has it
        if bool(torch.isfinite(values).all()):
            continue
        suspects = [checked[i] for i, v in zip(indices, values.tolist()) if not math.isfinite(v)]
        if any(not bool(torch.isfinite(t).all()) for t in suspects):
            return False
    return True


class ZooOptimizer(torch.optim.Optimizer):
    """Base of every swift zoo optimizer: a ``torch.optim.Optimizer`` whose ``step`` goes through one frame.

    **What a subclass declares** (class attributes):

    * ``name`` -- the registry name; it tags every param group (``"zoo_optimizer"``) so a state dict saved by
      another optimizer kind is refused at :meth:`load_state_dict`, not at the next step.
    * ``distributed`` -- a :class:`~swift_zoo.DistributedCapability`: for DDP, FSDP2, ZeRO-1/2, ZeRO-3 and
      FSDP1 flat parameters, supported or refused. A refused wrapper raises
      :class:`~swift_zoo.UnsupportedShardingError` at the first step that meets such a parameter, naming the
      optimizer, the wrapper and what to do instead; an undeclared one warns once.
    * ``elementwise`` -- ``True`` when the update of each element depends only on that element's gradient and
      state (plus scalars), so any DTensor layout works on local shards. ``False`` (default): the method needs
      whole matrices, and FSDP2 parameters must be ``Shard(0)`` on a 1-D mesh.
    * ``whole_tensor_sums`` -- ``True`` for an element-wise rule that also reads sums over a whole tensor (a
      norm, an RMS, Prodigy's distance estimate). Under FSDP2 those come from an all-reduce of the ranks' partial
      sums: one process's sums added in another order, so the parameters equal one process's within a tolerance,
      not bitwise (:func:`bitwise_under_fsdp2`). A count of 0/1 values (the cautious mask's) is exact and needs
      no flag.
    * ``sharded_state_keys`` -- for parameters computed on an owner rank (below), the state keys that stay
      sharded like the parameter (element-wise state such as Muon's momentum); every other state tensor of such
      a parameter is owner-held.

    **What a subclass implements**: ``_step()`` -- one update of every parameter with a gradient, run under
    ``torch.no_grad()``. The closure, the checks below and the non-finite policy are handled here.

    **FSDP2** (DTensor parameters, see :mod:`swift_zoo.optim._sharding`): element-wise rules run on
    ``local_tensor(p)``, ``local_tensor(p.grad)`` and state made with ``torch.zeros_like(p)`` (a DTensor, so
    ``torch.distributed.checkpoint`` reshards it). A whole-matrix rule computes each matrix on one owner rank:
    :attr:`matrix_owners` plans the owners and moves the data (gather the local rows to the owner, compute,
    scatter the result's rows back), and :meth:`_owner_computed` tells this frame which parameters work that
    way, so that :meth:`state_dict` exports their owner-held state as ``Shard(0)`` DTensors (and values) every
    rank agrees on and :meth:`load_state_dict` gathers it to the owner of the run that loads it -- any world
    size. On one process and under DDP none of this touches ``torch.distributed``.

    **Non-finite gradients: one zoo-wide policy.** Before ``_step`` runs, every gradient is checked (one sum
    per tensor; under FSDP2 the verdict is all-reduced so every rank agrees). If any holds NaN or Inf:

    * ``"skip"`` (default): the step changes no parameter and no state, :attr:`skipped_steps` counts it, and a
      :class:`NonFiniteGradientWarning` names the parameters -- a NaN never silently poisons momentum and
      freezes a weight;
    * ``"raise"``: :class:`~swift_zoo.NonFiniteGradientError` names them.

    Choose with ``SWIFT_ZOO_NONFINITE_GRADS=skip|raise``, ``optimizer.nonfinite_grads = "raise"``, or the config
    key ``training_args.nonfinite_grads``.

    **Parameter groups**: :meth:`add_param_group` accepts a plain group after role-built groups that carry
    ``param_names`` (the new parameters get placeholder names). **State**: :meth:`load_state_dict` keeps each
    state tensor's saved dtype, on its parameter's device.
    """

    name: ClassVar[str] = ""
    distributed: ClassVar[DistributedCapability] = DistributedCapability()
    elementwise: ClassVar[bool] = False
    whole_tensor_sums: ClassVar[bool] = False
    sharded_state_keys: ClassVar[frozenset[str]] = frozenset()

    skipped_steps: int = 0
    _nonfinite_grads: str | None = None

    # ------------------------------------------------------------------ policy
    @property
    def nonfinite_grads(self) -> str:
        """``"skip"`` or ``"raise"``: what a step does when a gradient holds NaN or Inf."""
        return self._nonfinite_grads or default_nonfinite_policy()

    @nonfinite_grads.setter
    def nonfinite_grads(self, value: str) -> None:
        if value not in NONFINITE_POLICIES:
            message = f"{self._owner}: nonfinite_grads must be one of {', '.join(NONFINITE_POLICIES)}, got {value!r}"
            raise ConfigError(message, key="nonfinite_grads", expected=" or ".join(NONFINITE_POLICIES), found=value)
        self._nonfinite_grads = value

    @property
    def matrix_owners(self) -> MatrixOwners:
        """Which rank computes each whole (row-sharded) matrix, and the exchange to and from it."""
        owners = self.__dict__.get("_matrix_owners")
        if owners is None:
            owners = self.__dict__["_matrix_owners"] = MatrixOwners()
        return owners

    def _owner_computed(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        """Whether ``param`` is computed whole on an owner rank when it is row-sharded (default: never).
        A subclass that uses :attr:`matrix_owners` for some parameters says which here."""
        return False

    @property
    def _owner(self) -> str:
        return f"optimizer {self._tag!r}"

    @property
    def _tag(self) -> str:
        return self.name or type(self).__qualname__

    # -------------------------------------------------------------------- step
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient (``closure`` re-evaluates the loss, as torch's)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            with_grad = [(p, g) for g in self.param_groups for p in g["params"] if p.grad is not None]
            if with_grad:
                self._check_sharding(with_grad)
                if not self._gradients_finite(with_grad):
                    return loss
                if any(is_dtensor(p) for p, _ in with_grad):  # owners for every whole matrix at once: largest first
                    self.matrix_owners.assign(p for g in self.param_groups for p in g["params"]
                                              if self._owner_computed(p, g))
            self._step()
            for param, group in with_grad:  # every rank holds an entry (DCP's state initialisation relies on it)
                if is_dtensor(param) and self._owner_computed(param, group):
                    self.state[param]  # creates the entry
        return loss

    def _step(self) -> None:
        message = f"{type(self).__name__} must implement _step() (one update, under torch.no_grad())"
        raise NotImplementedError(message)

    # ------------------------------------------------------------------ checks
    def _check_sharding(self, with_grad: list[tuple[torch.Tensor, dict[str, Any]]]) -> None:
        checked = self.__dict__.setdefault("_sharding_checked", set())
        for param, group in with_grad:
            if id(param) in checked:
                continue
            wrapper = wrapper_of(param, group)
            if wrapper is not None:
                self._check_wrapper(wrapper, param, group)
            checked.add(id(param))

    def _check_wrapper(self, wrapper: str, param: torch.Tensor, group: Mapping[str, Any]) -> None:
        support = self.distributed.support(wrapper)
        where = f"{self._owner}: parameter {self._param_name(param)} (shape {tuple(param.shape)})"
        if support.refused:
            message = f"{where} comes from {WRAPPERS[wrapper]}, which this optimizer refuses: {support.how}"
            raise UnsupportedShardingError(message)
        if wrapper == "fsdp2" and not self.elementwise:
            problem = dtensor_layout_problem(param)
            if problem is not None:
                message = (
                    f"{where} is a DTensor with {problem}: this method needs whole matrices. Shard with "
                    "fully_shard on a 1-D mesh (the default Shard(0)), or use an element-wise optimizer."
                )
                raise UnsupportedShardingError(message)
        if not support.supported:
            warned = self.__dict__.setdefault("_untested_warned", set())
            if wrapper not in warned:
                warned.add(wrapper)
                message = (
                    f"{self._owner} has not declared support for {WRAPPERS[wrapper]} (its capability record says "
                    f"{support.status!r}); its updates there are not tested against one process"
                )
                warnings.warn(message, UntestedShardingWarning, stacklevel=4)

    def _gradients_finite(self, with_grad: list[tuple[torch.Tensor, dict[str, Any]]]) -> bool:
        finite = all_finite(local_tensor(p.grad) for p, _ in with_grad)
        meshes = {id(p.device_mesh): p.device_mesh for p, _ in with_grad if is_dtensor(p)}
        if meshes:
            finite = _agree_across_ranks(finite, meshes.values())
        if finite:
            return True
        bad = [self._param_name(p) for p, _ in with_grad if not bool(torch.isfinite(local_tensor(p.grad)).all())]
        shown = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
        where = shown or "a parameter on another rank"
        if self.nonfinite_grads == "raise":
            message = (
                f"{self._owner}: non-finite gradient (NaN or Inf) in {where}; nothing was updated "
                f"(nonfinite_grads='raise')"
            )
            raise NonFiniteGradientError(message, parameters=bad)
        self.skipped_steps += 1
        message = (
            f"{self._owner}: skipped a step (skipped so far: {self.skipped_steps}): non-finite gradient (NaN or "
            f"Inf) in {where}; no parameter or state changed. Set nonfinite_grads='raise' (or "
            f"{NONFINITE_ENV}=raise) to stop instead."
        )
        warnings.warn(message, NonFiniteGradientWarning, stacklevel=3)
        return False

    def _param_name(self, param: torch.Tensor) -> str:
        for group_index, group in enumerate(self.param_groups):
            for index, candidate in enumerate(group["params"]):
                if candidate is param:
                    names = group.get("param_names")
                    return repr(names[index]) if names else f"param_groups[{group_index}]['params'][{index}]"
        return "(not in a param group)"

    # ------------------------------------------------------------- param groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            message = f"{self._owner}: param_group must be a dict, got {type(param_group).__name__}"
            raise TypeError(message)
        group = dict(param_group)
        named = bool(self.param_groups) and "param_names" in self.param_groups[0]
        params = group.get("params")
        tensors = [params] if isinstance(params, torch.Tensor) else list(params if params is not None else ())
        if named and "param_names" not in group and not any(isinstance(p, tuple) for p in tensors):
            first = sum(len(g["params"]) for g in self.param_groups)
            group["params"] = tensors
            group["param_names"] = [f"added.{first + i}" for i in range(len(tensors))]
        group.setdefault(STATE_TAG, self._tag)
        super().add_param_group(group)
        added = self.param_groups[-1]
        self._check_sharding([(p, added) for p in added["params"]])  # refused wrappers fail at construction too

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """torch's state dict; under FSDP2 owner-held state is exported so every rank has the same keys
        (a collective then: every rank must call it, as ``get_optimizer_state_dict`` does)."""
        return export_owner_state(self, super().state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a state dict saved by another optimizer kind (with what it is and what to do), then load it
        keeping each state tensor's saved dtype on its parameter's device; under FSDP2 owner-held state goes
        to this run's owners."""
        self._check_state_kind(state_dict)
        state_dict = import_owner_state(self, state_dict)
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # a state saved before the tag existed gets it back
            group[STATE_TAG] = self._tag
        restore_state_dtypes(self, state_dict)

    def _check_state_kind(self, state_dict: Any) -> None:
        groups = state_dict.get("param_groups") if isinstance(state_dict, Mapping) else None
        if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
            message = (
                f"{self._owner}: expected a state dict with 'state' and a list of 'param_groups', got "
                f"{type(state_dict).__name__} with keys {sorted(state_dict) if isinstance(state_dict, Mapping) else '-'}"
            )
            raise OptimizerStateError(message)
        tags = {g.get(STATE_TAG) for g in groups}
        others = sorted(str(t) for t in tags - {None, self._tag})
        if others:
            message = (
                f"{self._owner}: this state dict was saved by optimizer {others[0]!r} (its param groups say "
                f"{STATE_TAG}={others[0]!r}); load it into a {others[0]!r} optimizer, or start {self._tag!r} from "
                "fresh state"
            )
            raise OptimizerStateError(message)
        if None not in tags:
            return
        ignored = {"params", "param_names", STATE_TAG}
        for index, (saved, mine) in enumerate(zip(groups, self.param_groups)):
            missing = sorted(set(mine) - set(saved) - ignored)
            unexpected = sorted(set(saved) - set(mine) - ignored)
            if missing or unexpected:
                message = (
                    f"{self._owner}: this state dict carries no {STATE_TAG!r} tag and param group {index} does not "
                    f"look like this optimizer's: missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}. "
                    "It was probably saved by another optimizer kind."
                )
                raise OptimizerStateError(message)


def bitwise_under_fsdp2(optimizer: Any) -> bool:
    """Whether an optimizer (class or instance) promises bitwise one process's parameters under FSDP2: an
    element-wise rule (``elementwise``) without whole-tensor sums (``whole_tensor_sums``). Every other supported
    method promises agreement within a tolerance (the tests use 1e-6 normwise per parameter)."""
    return bool(getattr(optimizer, "elementwise", False)) and not bool(getattr(optimizer, "whole_tensor_sums", False))


def _agree_across_ranks(finite: bool, meshes: Iterable[Any]) -> bool:
    """All ranks of every mesh agree: finite only if finite everywhere (an all-reduce of the flag, MIN)."""
    import torch.distributed as dist

    for mesh in meshes:
        flag = torch.tensor([1.0 if finite else 0.0], device=mesh.device_type)
        for group in mesh.get_all_groups():  # every dimension of the mesh: all its ranks agree
            dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=group)
            world = dist.get_world_size(group)
            record_collective("all_reduce", 2 * (world - 1) / world * flag.element_size())
        finite = bool(flag.item() > 0)
    return finite
