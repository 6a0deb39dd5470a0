"""Scion (Pethick et al., "Training Deep Learning Models with Norm-Constrained LMOs", arXiv:2502.07529)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_optim_zoo._stepping import stepped_params
from swift_optim_zoo.muon.muon import _NS_DTYPES
from swift_optim_zoo.scion.lmo import LMOS, is_row_local, lmo_for_role
from swift_zoo import DistributedCapability
from swift_zoo.optim import (
    ZooOptimizer,
    group_role,
    local_tensor,
    placeholder,
    require_bool,
    require_choice,
    require_in_range,
    require_int,
    require_non_negative,
    require_positive,
)
from swift_zoo.params import ParamRole

LMO_CHOICES = ("auto", *LMOS)


class Scion(ZooOptimizer):
    r"""Scion: momentum, then each layer's linear minimisation oracle (LMO) in the norm that suits its role.

    .. math::
        d \leftarrow (1-\alpha) d + \alpha g,\qquad
        \theta \leftarrow \begin{cases}(1-\eta)\,\theta - \eta\rho\,\mathrm{lmo}(d) & \text{constrained}\\
        \theta(1-\eta\lambda) - \eta\rho\,\mathrm{lmo}(d) & \text{unconstrained (uScion)}\end{cases}

    (Algorithm 1 of arXiv:2502.07529: :math:`\alpha` = ``momentum``, :math:`\rho` the radius = ``scale``). The
    oracle per parameter (:mod:`swift_optim_zoo.scion.lmo`), chosen from its role as the paper's recipe when
    ``lmo="auto"``: ``spectral`` (Newton-Schulz, :math:`\sqrt{d_{out}/d_{in}}`) for hidden matrices,
    ``col`` for input embeddings, ``sign`` (:math:`\mathrm{sign}(d)/d_{in}`) for the output head,
    ``bias_rms`` for norms and biases. A param group may name its own ``lmo`` and ``scale``; the head takes
    ``head_scale`` (the paper's nanoGPT runs use radius 50 and 50 x 60 = 3000 for the head).
    pytorch_optimizer 4.1's ``SCION`` chooses its norm by shape (``Auto``: spectral for matrices, including the
    embedding and head); its ``norm_type``/``scale`` per group reproduce this class's per-role choices.

    Under FSDP2 ``d`` stays sharded like the parameter and the oracles that work row by row (``sign``, ``row``,
    ``col`` on an embedding table: :func:`~swift_optim_zoo.scion.lmo.is_row_local`) run on each rank's rows; the
    others (``spectral``, ``bias_rms``) need the whole tensor: ``d`` goes to the tensor's owner rank, which runs
    the oracle and sends every rank its rows of the result (one ``all_to_all`` each way for all tensors).

    Defaults (the paper's unconstrained nanoGPT setting with pytorch_optimizer's radius): ``lr=1e-3,
    momentum=0.1, scale=1.0, head_scale=1.0, constrained=False, weight_decay=0, lmo="auto", ns_steps=5,
    ns_dtype="bfloat16"``. State: ``d`` (parameter dtype) per parameter, ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: scion
          optimizer_kwargs: {lr: 2.4e-4, momentum: 0.1, scale: 50.0, head_scale: 3000.0, constrained: true}
    """

    name = "scion"
    distributed: ClassVar[DistributedCapability] = WHOLE_MATRIX
    sharded_state_keys = frozenset({"d"})

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.1, scale: float = 1.0,
                 head_scale: float = 1.0, constrained: bool = False, weight_decay: float = 0.0,
                 lmo: Literal["auto", "spectral", "sign", "col", "row", "bias_rms"] = "auto", ns_steps: int = 5,
                 ns_dtype: Literal["bfloat16", "float32", "float64"] = "bfloat16") -> None:
        owner = f"optimizer {self.name!r}"
        defaults = {
            "lr": require_non_negative(owner, "lr", lr),
            "momentum": require_in_range(owner, "momentum", momentum, 0.0, 1.0, low_inclusive=False),
            "scale": require_positive(owner, "scale", scale),
            "head_scale": require_positive(owner, "head_scale", head_scale),
            "constrained": require_bool(owner, "constrained", constrained),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "lmo": require_choice(owner, "lmo", lmo, LMO_CHOICES),
            "ns_steps": require_int(owner, "ns_steps", ns_steps, low=1, high=100),
            "ns_dtype": require_choice(owner, "ns_dtype", ns_dtype, tuple(_NS_DTYPES)),
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for the conformance suite's small problems."""
        return {"lr": 1e-2}

    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """One parameter-sized tensor (``d``) in the parameter's dtype."""
        return param.numel() * param.element_size()

    def oracle_of(self, param: torch.Tensor, group: Mapping[str, Any]) -> tuple[str, float]:
        """The oracle and radius ``param`` steps with."""
        role = group_role(group, param)
        name = lmo_for_role(role, param) if group["lmo"] == "auto" else group["lmo"]
        scale = group["head_scale"] if role is ParamRole.OUTPUT_HEAD else group["scale"]
        return name, scale

    def _owner_computed(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        return not is_row_local(self.oracle_of(param, group)[0], param.dim())

    def _step(self) -> None:
        whole: list[tuple[torch.Tensor, dict[str, Any]]] = []
        for group in self.param_groups:
            for param, state in stepped_params(self, group, lambda p: {"d": torch.zeros_like(p)}):
                d = local_tensor(state["d"])
                d.lerp_(local_tensor(param.grad), group["momentum"])
                if self.matrix_owners.owner_of(param) is not None and self._owner_computed(param, group):
                    whole.append((param, group))
                    continue
                self._apply(param, self._oracle(param, d, group), group)
        if whole:
            self._sharded_oracles(whole)

    def _oracle(self, param: torch.Tensor, d: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        """The oracle of ``param``'s role applied to ``d`` (whole, or this rank's rows of a row-local oracle)."""
        return LMOS[self.oracle_of(param, group)[0]](d, ns_steps=group["ns_steps"],
                                                      ns_dtype=_NS_DTYPES[group["ns_dtype"]])

    def _apply(self, param: torch.Tensor, direction: torch.Tensor, group: Mapping[str, Any]) -> None:
        """Shrink (constrained) or decay, then step along ``direction`` (the local rows under FSDP2)."""
        lr, local = group["lr"], local_tensor(param)
        if group["constrained"]:
            local.mul_(1 - lr)
        elif group["weight_decay"] != 0:
            local.mul_(1 - lr * group["weight_decay"])
        local.add_(direction.to(param.dtype), alpha=-lr * self.oracle_of(param, group)[1])

    def _sharded_oracles(self, items: list[tuple[torch.Tensor, dict[str, Any]]]) -> None:
        """FSDP2: each ``d`` gathered whole to its owner, which runs the oracle; every rank gets its rows back."""
        owners = self.matrix_owners
        params = [param for param, _ in items]
        fulls = owners.gather(params, [local_tensor(self.state[param]["d"]) for param in params])
        outputs = [placeholder(param.shape, param.dtype) if full is None else self._oracle(param, full, group)
                   for (param, group), full in zip(items, fulls)]
        for (param, group), rows in zip(items, owners.scatter(params, outputs)):
            self._apply(param, rows, group)
