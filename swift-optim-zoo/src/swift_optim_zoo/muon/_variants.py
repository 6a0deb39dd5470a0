"""The frame of Muon's variants (NorMuon, AdaMuon, MuonClip): Muon's routing, param groups and inner AdamW, with
each variant's own treatment of the momentum and of the orthogonalised matrix.

A variant implements :meth:`MuonVariant._direction` -- a pure function of whole matrices (the parameter's
gradient and its state) returning the step direction, lr scaling included -- and may add state
(:meth:`MuonVariant._new_state`) and defaults (``variant_defaults``, merged into every param group). The frame
applies decoupled weight decay with the unscaled lr, then ``p -= lr * direction``, as Muon does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX_UNSHARDED
from swift_optim_zoo._stepping import stepped_params
from swift_optim_zoo.muon.muon import _NS_DTYPES, Muon, matrix_view
from swift_optim_zoo.muon.newton_schulz import newton_schulz_orthogonalize
from swift_zoo.optim import group_role, require_in_range, require_non_negative
from swift_zoo.params import ParamRole


def matrix_rows(param: torch.Tensor, group: Mapping[str, Any]) -> int:
    """How many rows Muon's matrix view of ``param`` has (all experts' rows for an expert stack)."""
    if group_role(group, param) is ParamRole.EXPERT_STACK:
        return param.numel() // param.shape[-1]
    return param.shape[0]


class MuonVariant(Muon):
    """Base of Muon's variants; see the module docstring."""

    variant_defaults: ClassVar[dict[str, Any]] = {}
    distributed = WHOLE_MATRIX_UNSHARDED  # the variants' steps run on whole matrices; not yet on owner ranks

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
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def _direction(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                   group: Mapping[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def _orthogonalize(self, update: torch.Tensor, param: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        """Newton-Schulz of ``update`` seen as Muon's matrix (or stack of matrices), in float32 or float64."""
        per_expert = group_role(group, param) is ParamRole.EXPERT_STACK
        ortho = newton_schulz_orthogonalize(
            matrix_view(update, per_expert=per_expert), steps=group["ns_steps"],
            coefficients=group["ns_coefficients"], eps=group["eps"], dtype=_NS_DTYPES[group["ns_dtype"]],
        )
        return ortho.to(torch.float64 if param.dtype == torch.float64 else torch.float32)

    def _muon_group_step(self, group: dict[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]]:
        """Each matrix whole, on this rank (nothing is handed to Muon's owner-rank exchange: ``[]``)."""
        lr, decay = group["lr"], group["weight_decay"]
        for param, state in stepped_params(self, group, lambda p: self._new_state(p, group)):
            direction = self._direction(param, param.grad, state, group)
            if decay != 0:
                param.mul_(1 - lr * decay)
            param.add_(direction.reshape(param.shape).to(param.dtype), alpha=-lr)
        return []
