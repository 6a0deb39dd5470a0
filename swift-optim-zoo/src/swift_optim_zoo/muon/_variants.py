"""The frame of Muon's variants (NorMuon, AdaMuon): Muon's routing, param groups and inner AdamW, with each
variant's own treatment of the momentum and of the orthogonalised matrix.

A variant implements :meth:`MuonVariant._direction` -- a pure function of whole matrices (the parameter's
gradient and its state) returning the step direction, lr scaling included -- and may add state
(:meth:`MuonVariant._new_state`) and defaults (``variant_defaults``, merged into every param group). The frame
applies decoupled weight decay with the unscaled lr, then ``p -= lr * direction``, as Muon does.

Under FSDP2 (row-sharded parameters) the momentum stays sharded and is updated on each rank's rows; the update
goes to the matrix's owner rank in ``ns_dtype`` (one ``all_to_all`` for all matrices, as Muon's), which runs
:meth:`MuonVariant._owner_output` on the whole matrix; each rank gets its rows of that output back and finishes
them in :meth:`MuonVariant._sharded_directions` (a variant whose statistics are element-wise keeps them sharded
there and all-reduces the sums it needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_optim_zoo._stepping import stepped_params
from swift_optim_zoo.muon.muon import _NS_DTYPES, Muon, matrix_view
from swift_optim_zoo.muon.newton_schulz import newton_schulz_orthogonalize
from swift_zoo.optim import group_role, local_tensor, placeholder, require_in_range, require_non_negative
from swift_zoo.params import ParamRole

ShardedItem = tuple[torch.Tensor, torch.Tensor, dict[str, Any]]  # (param, local rows of the update, group)


def matrix_rows(param: torch.Tensor, group: Mapping[str, Any]) -> int:
    """How many rows Muon's matrix view of ``param`` has (all experts' rows for an expert stack)."""
    if group_role(group, param) is ParamRole.EXPERT_STACK:
        return param.numel() // param.shape[-1]
    return param.shape[0]


def statistic_dtype(param: torch.Tensor) -> torch.dtype:
    """The dtype the variants keep their second moments and directions in: float64 for float64, else float32."""
    return torch.float64 if param.dtype == torch.float64 else torch.float32


class MuonVariant(Muon):
    """Base of Muon's variants; see the module docstring."""

    variant_defaults: ClassVar[dict[str, Any]] = {}
    distributed = WHOLE_MATRIX

    def _set_variant_defaults(self, values: Mapping[str, Any]) -> None:
        """Merge the variant's own hyperparameters into the defaults and every Muon param group."""
        self.defaults.update(values)
        for group in self.param_groups:
            if group.get("use_muon"):
                for key, value in values.items():
                    group.setdefault(key, value)

    @staticmethod
    def _second_moment_options(owner: str, beta2: float, normalization_eps: float) -> dict[str, float]:
        """The validated ``beta2`` and ``normalization_eps`` of the variants with a second moment."""
        return {"beta2": require_in_range(owner, "beta2", beta2, 0.0, 1.0, high_inclusive=False),
                "normalization_eps": require_non_negative(owner, "normalization_eps", normalization_eps)}

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        """The momentum, sharded like the parameter (a DTensor under FSDP2)."""
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    # ----------------------------------------------------------------- the variant's parts
    def _direction(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                   group: Mapping[str, Any]) -> torch.Tensor:
        """The step direction of a whole matrix from its whole gradient (momentum updated here)."""
        raise NotImplementedError

    def _owner_output(self, param: torch.Tensor, update: torch.Tensor, state: dict[str, Any],
                      group: Mapping[str, Any]) -> torch.Tensor:
        """FSDP2, on the owner: from the whole momentum ``update`` (``ns_dtype``), the parameter-shaped tensor whose
        rows every rank receives (of dtype :meth:`_owner_output_dtype`)."""
        raise NotImplementedError

    def _owner_output_dtype(self, param: torch.Tensor, group: Mapping[str, Any]) -> torch.dtype:
        raise NotImplementedError

    def _sharded_directions(self, items: list[ShardedItem], received: list[torch.Tensor]) -> list[torch.Tensor]:
        """FSDP2, on every rank: the direction's local rows from the owner outputs' rows (default: they are it)."""
        return received

    # ------------------------------------------------------------------------ shared
    @staticmethod
    def _momentum_update(grad: torch.Tensor, state: Mapping[str, Any], group: Mapping[str, Any]) -> torch.Tensor:
        """Muon's momentum on the (local) gradient: the buffer lerped, then the Nesterov look-ahead or the buffer."""
        buffer = local_tensor(state["momentum_buffer"])
        buffer.lerp_(grad, 1 - group["momentum"])
        return grad.lerp(buffer, group["momentum"]) if group["nesterov"] else buffer

    @staticmethod
    def _newton_schulz(update: torch.Tensor, param: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        """Newton-Schulz of ``update`` seen as Muon's matrix (or stack of matrices), in ``ns_dtype``."""
        per_expert = group_role(group, param) is ParamRole.EXPERT_STACK
        return newton_schulz_orthogonalize(
            matrix_view(update, per_expert=per_expert), steps=group["ns_steps"],
            coefficients=group["ns_coefficients"], eps=group["eps"], dtype=_NS_DTYPES[group["ns_dtype"]],
        )

    def _orthogonalize(self, update: torch.Tensor, param: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        """Newton-Schulz of ``update`` seen as Muon's matrix (or stack of matrices), in float32 or float64."""
        return self._newton_schulz(update, param, group).to(statistic_dtype(param))

    @staticmethod
    def _write(param: torch.Tensor, direction: torch.Tensor, group: Mapping[str, Any]) -> None:
        """Decoupled decay with the unscaled lr, then ``p -= lr * direction`` (on the local rows under FSDP2)."""
        local = local_tensor(param)
        if group["weight_decay"] != 0:
            local.mul_(1 - group["lr"] * group["weight_decay"])
        local.add_(direction.reshape(local.shape).to(param.dtype), alpha=-group["lr"])

    # -------------------------------------------------------------------------- step
    def _muon_group_step(self, group: dict[str, Any]) -> list[ShardedItem]:
        """Each whole matrix stepped here; the row-sharded ones' momentum updated on the local rows and returned
        as ``(param, local rows of the update in ns_dtype, group)`` for :meth:`_sharded_orthogonalisation`."""
        sharded = []
        for param, state in stepped_params(self, group, lambda p: self._new_state(p, group)):
            grad = local_tensor(param.grad)
            if self.matrix_owners.owner_of(param) is not None:
                update = self._momentum_update(grad, state, group)
                sharded.append((param, update.to(_NS_DTYPES[group["ns_dtype"]]), group))
                continue
            self._write(param, self._direction(param, grad, state, group), group)
        return sharded

    def _sharded_orthogonalisation(self, items: list[ShardedItem]) -> None:
        """FSDP2: each update gathered whole to its owner, which computes :meth:`_owner_output`; every rank gets its
        rows back, finishes them (:meth:`_sharded_directions`) and writes them."""
        owners = self.matrix_owners
        params = [param for param, _, _ in items]
        fulls = owners.gather(params, [update for _, update, _ in items])
        outputs = [
            placeholder(param.shape, self._owner_output_dtype(param, group)) if full is None
            else self._owner_output(param, full, self.state[param], group)
            for (param, _, group), full in zip(items, fulls)
        ]
        received = owners.scatter(params, outputs)
        for (param, _, group), direction in zip(items, self._sharded_directions(items, received)):
            self._write(param, direction, group)
