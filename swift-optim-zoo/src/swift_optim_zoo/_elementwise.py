"""The frame of the zoo's element-wise optimizers: one per-tensor rule, run eagerly, compiled, or on FSDP2 shards.

A subclass of :class:`ElementwiseOptimizer` declares its state tensors (``state_keys``, zero-initialised in the
parameter's dtype), a :class:`~swift_optim_zoo._fused.FusedKernel` ``kernel`` wrapping its rule
``rule(param, grad, *state_tensors, hyper, *, sums=None, **flags)``, and ``_hyper(group, state)``: the step's
scalars (learning rate, bias corrections, ...). The rule updates its tensors in place and is written once:

* eagerly (default) ``hyper`` is a tuple of Python floats;
* ``fused=True`` runs the same rule as a C kernel for float32 CPU tensors (:mod:`swift_optim_zoo._native_elementwise`,
  the kernel's ``native``) and compiles it elsewhere (:mod:`swift_optim_zoo._fused`, ``hyper`` then being a small
  tensor), so each tensor is read and written in one or two passes over memory;
* on an FSDP2 (``DTensor``) parameter the rule runs eagerly on the local shards, and ``sums`` is a
  :class:`ShardSums`: the few rules that need a whole-tensor statistic (LAMB's trust ratio, StableAdamW's RMS, MARS'
  gradient-correction norm, the cautious mask's rescaling) take their sums through it, so the statistic is the
  full tensor's (an exact all-reduce of the partial sums), never the shard's.

``flags`` are structural switches (``cautious``, ``decay``...): each value compiles its own variant once.
Per-parameter ``step`` counts are plain ints in the state, so ``state_dict()`` loads with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo._catalogue._distributed import CAUTIOUS_COMPILED, ELEMENT_WISE, TENSOR_SUMS
from swift_optim_zoo._fused import FusedKernel, can_alias
from swift_optim_zoo._stepping import stepped_params
from swift_zoo import DistributedCapability
from swift_zoo.optim import ZooOptimizer, is_dtensor, local_tensor
from swift_zoo.optim._sharding import record_collective


class ShardSums:
    """Whole-tensor sums for a rule running on one shard of an FSDP2 parameter: ``sum(x)`` all-reduces the local
    partial sum over the parameter's mesh (exact: a sum of sums); ``numel`` is the full tensor's element count."""

    def __init__(self, param: torch.Tensor) -> None:
        from torch.distributed.tensor import Replicate

        self.numel = param.numel()
        self.replicated = all(isinstance(p, Replicate) for p in param.placements)
        self._group = None if self.replicated else param.device_mesh.get_group()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The whole tensor's sum of ``tensor`` (this rank's part of it)."""
        return self.all_reduce(tensor.sum(dtype=torch.float32 if tensor.dtype in (torch.bfloat16, torch.float16)
                                          else None))

    def all_reduce(self, partial: torch.Tensor) -> torch.Tensor:
        """``partial`` summed over the ranks that hold the other shards (as it is for a replicated tensor)."""
        if self._group is not None:
            import torch.distributed as dist

            partial = partial.clone()
            dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=self._group)
            world = dist.get_world_size(self._group)
            record_collective("all_reduce", 2 * (world - 1) / world * partial.numel() * partial.element_size())
        return partial


def whole_sum(tensor: torch.Tensor, sums: ShardSums | None) -> torch.Tensor:
    """The sum of ``tensor`` over the whole parameter: local when ``sums`` is None, else all-reduced."""
    return tensor.sum() if sums is None else sums.sum(tensor)


def whole_numel(tensor: torch.Tensor, sums: ShardSums | None) -> int:
    """The element count of the whole parameter ``tensor`` is (a shard of)."""
    return tensor.numel() if sums is None else sums.numel


def cautious_mask(update: torch.Tensor, grad: torch.Tensor, sums: ShardSums | None) -> torch.Tensor:
    r"""The cautious mask of arXiv:2411.16085 (Alg. 1): :math:`\phi = \mathbb{1}[u \odot g > 0]` rescaled by
    :math:`d / (\mathrm{nnz}(\phi) + 1)`, ``d`` the tensor's element count, so the masked update keeps its scale.
    (pytorch_optimizer and the paper's code use this ``+1`` form; timm divides by ``max(mean(phi), 1e-3)``.)"""
    mask = (update * grad > 0).to(update.dtype)
    count = whole_sum(mask, sums)
    return mask * (whole_numel(mask, sums) / (count + 1))


def narrow_for_cautious(optimizer: ZooOptimizer, param_group: Mapping[str, Any]) -> None:
    """A group stepping with ``cautious=True`` (its own flag, else the optimizer's default) needs the mask's
    whole-tensor count, which flat partitions (ZeRO, FSDP1 ``use_orig_params=False``) would cut: the optimizer's
    record becomes :data:`~swift_optim_zoo._catalogue._distributed.TENSOR_SUMS` (refused there, FSDP2 kept), or
    with ``fused=True`` :data:`~swift_optim_zoo._catalogue._distributed.CAUTIOUS_COMPILED` (FSDP2 runs the rule
    eagerly, one process compiled: untested). Call it before the group is added, so refusals hold at construction."""
    if param_group.get("cautious", optimizer.defaults.get("cautious", False)):
        fused = param_group.get("fused", optimizer.defaults.get("fused", False))
        optimizer.distributed = CAUTIOUS_COMPILED if fused else TENSOR_SUMS


class ElementwiseOptimizer(ZooOptimizer):
    """Base of the per-tensor optimizers (see the module docstring for what a subclass declares)."""

    elementwise: ClassVar[bool] = True
    distributed: ClassVar[DistributedCapability] = ELEMENT_WISE
    state_keys: ClassVar[tuple[str, ...]] = ()
    kernel: ClassVar[FusedKernel]

    # ----------------------------------------------------------------- subclass hooks
    def _hyper(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[float, ...]:
        """The rule's scalars for this step of this parameter (``state["step"]`` already counts it)."""
        raise NotImplementedError

    def _flags(self, group: Mapping[str, Any], param: torch.Tensor) -> dict[str, bool]:
        """Structural switches of the rule (compiled once per value)."""
        return {}

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        return {key: torch.zeros_like(param, memory_format=torch.preserve_format) for key in self.state_keys}

    # ----------------------------------------------------------------- contract
    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """One parameter-sized tensor (parameter dtype) per state key."""
        return len(self.state_keys) * param.numel() * param.element_size()

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for the conformance suite's small problems."""
        return {"lr": 1e-2}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        narrow_for_cautious(self, param_group)
        super().add_param_group(param_group)

    # ----------------------------------------------------------------- the step
    def _step(self) -> None:
        for group in self.param_groups:
            for param, state in stepped_params(self, group, lambda p, g=group: self._new_state(p, g)):
                self._apply(param, state, group)

    def _apply(self, param: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        tensors = [param, param.grad, *(state[key] for key in self.state_keys)]
        run_rule(self.kernel, tensors, self._hyper(group, state), self._flags(group, param),
                 fused=bool(group.get("fused", False)), owner=self._tag)


def run_rule(kernel: FusedKernel, tensors: list[torch.Tensor], hyper: tuple[float, ...], flags: Mapping[str, bool],
             *, fused: bool, owner: str) -> Any:
    """Apply ``kernel``'s rule to ``tensors`` (parameter first): on local shards with :class:`ShardSums` for a
    DTensor, compiled for ``fused`` when every tensor is dense, contiguous and of one dtype, else eagerly."""
    first = tensors[0]
    if is_dtensor(first):
        return kernel.rule(*(local_tensor(t) for t in tensors), hyper, sums=ShardSums(first), **flags)
    if fused and can_alias(*tensors) and all(t.dtype == first.dtype for t in tensors):
        return kernel(*tensors, scalars=hyper, owner=owner, flat=True, **flags)
    return kernel.rule(*tensors, hyper, **flags)
