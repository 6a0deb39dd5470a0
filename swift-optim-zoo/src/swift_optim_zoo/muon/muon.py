"""Muon (Keller Jordan, 2024; RMS matching from arXiv:2502.16982) with an inner AdamW in the same object."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_optim_zoo._inner_adamw import adamw_state_bytes, inner_adamw_step
from swift_optim_zoo.muon.newton_schulz import (
    KELLER_COEFFICIENTS,
    batches_by_shape,
    newton_schulz_orthogonalize,
    newton_schulz_orthogonalize_batch,
)
from swift_zoo import ConfigError
from swift_zoo.optim import (
    ZooOptimizer,
    group_role,
    local_tensor,
    placeholder,
    require_betas,
    require_choice,
    require_finite,
    require_in_range,
    require_int,
    require_non_negative,
)
from swift_zoo.params import MATRIX_ROLES, NO_DECAY_ROLES, ParamRole

_NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
_ADAMW_KEYS = ("adamw_lr", "adamw_betas", "adamw_eps", "adamw_wd")
MAX_NS_STEPS = 100  # each step is three matmuls with the whole matrix; 5 is the published setting



def lr_scale(shape: tuple[int, int], adjust_lr_fn: str) -> float:
    """The factor Muon multiplies its lr by for an ``[A, B]`` matrix.

    ``original`` (Keller): ``max(1, A/B) ** 0.5``; ``match_rms_adamw`` (Moonlight): ``0.2 * max(A, B) ** 0.5``,
    which gives the update about AdamW's RMS (0.2), so AdamW's lr and weight decay carry over.
    """
    rows, cols = shape
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols))


def matrix_shape(shape: torch.Size | tuple[int, ...], *, per_expert: bool) -> tuple[int, int]:
    """The ``[A, B]`` shape Muon orthogonalises for a parameter of ``shape`` (see :func:`matrix_view`)."""
    if len(shape) == 2 or per_expert:
        return int(shape[-2]), int(shape[-1])
    return int(shape[0]), int(math.prod(shape[1:]))


def matrix_view(tensor: torch.Tensor, *, per_expert: bool) -> torch.Tensor:
    """The matrix (or stack of matrices) Muon orthogonalises for a parameter-shaped tensor.

    2-D ``[out, in]`` as is; an expert stack (role ``expert_stack``) ``[E, out, in]`` per expert
    (leading dims batched); any other N-D tensor, e.g. a convolution kernel ``[out, in, k...]``,
    flattened to ``[out, in * prod(k)]``.
    """
    if tensor.dim() == 2:
        return tensor
    if per_expert:
        return tensor.reshape(-1, *tensor.shape[-2:])
    return tensor.reshape(tensor.size(0), -1)


class Muon(ZooOptimizer):
    r"""Muon: SGD momentum, orthogonalised by a Newton–Schulz iteration, on hidden matrices only.

    For a hidden matrix :math:`W` (role ``hidden_matrix`` or ``expert_stack``) with gradient :math:`G_t`:

    .. math::
        B_t = \mu B_{t-1} + (1-\mu) G_t,\qquad
        U_t = \begin{cases}(1-\mu) G_t + \mu B_t & \text{nesterov}\\ B_t & \text{otherwise}\end{cases}\\
        O_t = \mathrm{NS}_5(U_t),\qquad
        W \leftarrow W (1 - \eta\lambda) - \eta\, s(A, B)\, O_t

    (the ``lerp`` form of momentum, as Keller Jordan's ``muon.py`` and ``torch.optim.Muon``).
    ``NS_5`` is the quintic Newton–Schulz iteration
    (:func:`~swift_optim_zoo.muon.newton_schulz_orthogonalize`), coefficients (3.4445, -4.7750,
    2.0315), computed in ``ns_dtype`` (bfloat16 by default, like the reference; the parameter
    itself is updated in its own dtype). ``s(A, B)`` is ``adjust_lr_fn``: ``"original"`` =
    :math:`\sqrt{\max(1, A/B)}` (Keller), ``"match_rms_adamw"`` = :math:`0.2\sqrt{\max(A, B)}`
    (Moonlight, arXiv:2502.16982: reuse AdamW's lr and weight decay); the kwarg carries
    ``torch.optim.Muon``'s name. Weight decay is decoupled and uses the unscaled lr, as both
    references do.

    Shapes: 2-D matrices as they are; 3-D expert stacks ``[E, out, in]`` are orthogonalised per
    expert (a batched iteration, scale from ``[out, in]``); convolution kernels
    ``[out, in, k, k]`` are flattened to ``[out, in*k*k]`` (Keller's rule).

    Every other parameter (embeddings, tied embeddings, the output head, norms, biases, 1-D
    tensors) goes through an inner AdamW with its own ``adamw_lr``, ``adamw_betas``,
    ``adamw_eps`` and ``adamw_wd`` (norms and biases never decayed). To let an LR schedule scale
    both, each param group given is split into a Muon group (``use_muon=True``, ``lr``) and an
    AdamW group (``use_muon=False``, ``lr = adamw_lr``); a group that already carries
    ``use_muon`` is taken as it is (Keller's ``MuonWithAuxAdam`` convention), and a group's own
    ``adamw_*`` keys override the constructor's. Roles come from the groups built by
    :func:`swift_zoo.build_optimizer` (``"role"``), else from shapes (>= 2-D -> Muon).

    Versus ``torch.optim.Muon`` (torch >= 2.9): on 2-D matrices with the same settings the update
    is the same computation (same momentum form, normalisation clamp, bf16 iteration, lr
    adjustment and decoupled decay; equal to float rounding in the tests). Differences: the
    defaults (Keller's ``lr=0.02, weight_decay=0`` here, torch's ``lr=1e-3, weight_decay=0.1``),
    torch raises for any non-2-D parameter and leaves the rest to a second optimizer, while this
    class flattens convolutions, batches expert stacks and runs the inner AdamW itself; and
    ``ns_dtype`` can move the iteration to float32/float64.

    Runs on one process: no ``torch.distributed`` needed. Under FSDP2 (row-sharded DTensor
    parameters) the momentum stays sharded; each matrix's update is gathered, in ``ns_dtype``, to one
    owner rank (owners balanced by size), orthogonalised there whole, and its rows sent back (one
    ``all_to_all`` per direction for all matrices: :class:`~swift_zoo.optim.MatrixOwners`), so the result
    is one process's. Flat partitions (ZeRO, FSDP1 ``use_orig_params=False``) are refused.

    Defaults (Keller Jordan's): ``lr=0.02, momentum=0.95, nesterov=True, weight_decay=0,
    ns_steps=5, adjust_lr_fn="original"``; inner AdamW ``adamw_lr=3e-4, adamw_betas=(0.9, 0.95),
    adamw_eps=1e-10, adamw_wd=0``. With ``adjust_lr_fn="match_rms_adamw"`` use AdamW-like values
    (Moonlight: ``lr=1e-3, weight_decay=0.1``).

    State: ``momentum_buffer`` (parameter dtype) per Muon parameter; ``exp_avg``, ``exp_avg_sq``,
    ``step`` per AdamW parameter.

    .. code-block:: yaml

        training_args:
          optimizer_type: muon
          optimizer_kwargs: {lr: 0.02, momentum: 0.95, adamw_lr: 3.0e-4}
    """

    name = "muon"
    distributed = WHOLE_MATRIX
    sharded_state_keys = frozenset({"momentum_buffer"})

    def __init__(
        self,
        params: Any,
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        ns_coefficients: tuple[float, float, float] = KELLER_COEFFICIENTS,
        eps: float = 1e-7,
        adjust_lr_fn: Literal["original", "match_rms_adamw"] = "original",
        ns_dtype: Literal["bfloat16", "float32", "float64"] = "bfloat16",
        adamw_lr: float = 3e-4,
        adamw_betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-10,
        adamw_wd: float = 0.0,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        require_non_negative(owner, "lr", lr)
        require_in_range(owner, "momentum", momentum, 0.0, 1.0, high_inclusive=False)
        require_non_negative(owner, "weight_decay", weight_decay)
        require_int(owner, "ns_steps", ns_steps, low=1, high=MAX_NS_STEPS)
        if isinstance(ns_coefficients, (str, bytes)) or len(tuple(ns_coefficients)) != 3:
            message = f"{owner}: ns_coefficients must be 3 finite numbers (a, b, c), got {ns_coefficients!r}"
            raise ConfigError(message, key="ns_coefficients", expected="3 finite numbers", found=ns_coefficients)
        for index, value in enumerate(ns_coefficients):
            require_finite(owner, f"ns_coefficients[{index}]", value)
        require_non_negative(owner, "eps", eps)
        require_choice(owner, "adjust_lr_fn", adjust_lr_fn, ("original", "match_rms_adamw"))
        require_choice(owner, "ns_dtype", ns_dtype, tuple(_NS_DTYPES))
        require_non_negative(owner, "adamw_lr", adamw_lr)
        require_betas(owner, "adamw_betas", adamw_betas)
        require_non_negative(owner, "adamw_eps", adamw_eps)
        require_non_negative(owner, "adamw_wd", adamw_wd)
        defaults = {
            "lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
            "ns_steps": ns_steps, "ns_coefficients": tuple(ns_coefficients), "eps": eps,
            "adjust_lr_fn": adjust_lr_fn, "ns_dtype": ns_dtype, "adamw_lr": adamw_lr,
            "adamw_betas": tuple(adamw_betas), "adamw_eps": adamw_eps, "adamw_wd": adamw_wd,
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Muon's lr plus an inner-AdamW lr fit for small test problems."""
        return {"lr": 0.02, "adamw_lr": 1e-2}

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, split into its Muon part and its AdamW part (see the class docstring)."""
        if "use_muon" in param_group:
            group = dict(param_group)
            if not group["use_muon"]:
                group = self._as_adamw_group(group)
            super().add_param_group(group)
            return
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        names = param_group.get("param_names")
        is_muon = [group_role(param_group, p) in MATRIX_ROLES and p.dim() >= 2 for p in params]
        for use_muon in (True, False):
            chosen = [p for p, m in zip(params, is_muon) if m is use_muon]
            if not chosen:
                continue
            group = {**param_group, "params": chosen, "use_muon": use_muon}
            if names is not None:
                group["param_names"] = [n for n, m in zip(names, is_muon) if m is use_muon]
            super().add_param_group(group if use_muon else self._as_adamw_group(group))

    def _as_adamw_group(self, group: dict[str, Any]) -> dict[str, Any]:
        options = {key: group.get(key, self.defaults[key]) for key in _ADAMW_KEYS}
        role = group.get("role")
        no_decay = role is not None and role in {r.value for r in NO_DECAY_ROLES}
        return {
            **group,
            "use_muon": False,
            "lr": options["adamw_lr"],
            "betas": tuple(options["adamw_betas"]),
            "eps": options["adamw_eps"],
            "weight_decay": 0.0 if no_decay else options["adamw_wd"],
        }

    # ------------------------------------------------------------------- state
    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """One momentum buffer (parameter dtype) for Muon parameters; AdamW's cost for the rest."""
        if group.get("use_muon"):
            return param.numel() * param.element_size()
        return adamw_state_bytes(param)

    # -------------------------------------------------------------------- step
    def _owner_computed(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        return bool(group.get("use_muon"))

    def _step(self) -> None:
        sharded: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = []
        for group in self.param_groups:
            if group["use_muon"]:
                sharded.extend(self._muon_group_step(group))
            else:
                inner_adamw_step(self, group["params"], group)
        if sharded:
            self._sharded_orthogonalisation(sharded)

    def _muon_group_step(self, group: dict[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]]:
        """Momentum and decay on the local rows; the update of each whole (not row-sharded) matrix. Returns
        ``(param, local rows of its update in ns_dtype, group)`` of the row-sharded ones."""
        params, grads, buffers = [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                message = "optimizer 'muon': sparse gradients are not supported"
                raise RuntimeError(message)
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(local_tensor(p.grad))
            buffers.append(local_tensor(state["momentum_buffer"]))
        if not params:
            return []
        lr, momentum = group["lr"], group["momentum"]
        torch._foreach_lerp_(buffers, grads, 1 - momentum)
        if group["weight_decay"] != 0:
            torch._foreach_mul_([local_tensor(p) for p in params], 1 - lr * group["weight_decay"])
        dtype = _NS_DTYPES[group["ns_dtype"]]
        sharded, whole = [], []
        for p, grad, buffer in zip(params, grads, buffers):
            if self.matrix_owners.owner_of(p) is None:
                whole.append((p, grad, buffer))
                continue
            update = grad.lerp(buffer, momentum) if group["nesterov"] else buffer
            sharded.append((p, update.to(dtype), group))  # the cast NS starts with: half the bytes to move
        self._orthogonalise_whole(whole, group)
        return sharded

    def _orthogonalise_whole(self, items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                             group: Mapping[str, Any]) -> None:
        """The update of each whole matrix: same-shape matrices iterate together
        (:func:`~swift_optim_zoo.muon.newton_schulz.newton_schulz_orthogonalize_batch`, in buffers allocated once per
        batch), then ``param -= lr * s(A, B) * ortho``."""
        if not items:
            return
        dtype = _NS_DTYPES[group["ns_dtype"]]
        per_expert = [group_role(group, p) is ParamRole.EXPERT_STACK for p, _, _ in items]
        shapes = [tuple(matrix_view(p, per_expert=e).shape) for (p, _, _), e in zip(items, per_expert)]
        itemsize = torch.empty((), dtype=dtype).element_size()
        for batch in batches_by_shape(shapes, itemsize=itemsize):
            updates = [items[i][1].lerp(items[i][2], group["momentum"]) if group["nesterov"] else items[i][2]
                       for i in batch]
            orthos = newton_schulz_orthogonalize_batch(
                [matrix_view(u, per_expert=per_expert[i]) for u, i in zip(updates, batch)], steps=group["ns_steps"],
                coefficients=group["ns_coefficients"], eps=group["eps"], dtype=dtype,
            )
            del updates
            for i, ortho in zip(batch, orthos):
                param = items[i][0]
                self._apply(param, ortho.reshape(param.shape), group)

    @staticmethod
    def _orthogonalised(param: torch.Tensor, update: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        """Newton-Schulz of the whole ``update`` of ``param``, in ``param``'s shape."""
        per_expert = group_role(group, param) is ParamRole.EXPERT_STACK
        ortho = newton_schulz_orthogonalize(
            matrix_view(update, per_expert=per_expert), steps=group["ns_steps"], coefficients=group["ns_coefficients"],
            eps=group["eps"], dtype=_NS_DTYPES[group["ns_dtype"]],
        )
        return ortho.reshape(param.shape)

    @staticmethod
    def _apply(param: torch.Tensor, ortho: torch.Tensor, group: Mapping[str, Any]) -> None:
        """``param -= lr * s(A, B) * ortho`` on the local rows (``ortho``: those rows)."""
        per_expert = group_role(group, param) is ParamRole.EXPERT_STACK
        scale = lr_scale(matrix_shape(param.shape, per_expert=per_expert), group["adjust_lr_fn"])
        local_tensor(param).add_(ortho, alpha=-group["lr"] * scale)

    def _sharded_orthogonalisation(self, items: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]]) -> None:
        """FSDP2: each update gathered whole to its owner, orthogonalised there, its rows sent back."""
        owners = self.matrix_owners
        params = [p for p, _, _ in items]
        fulls = owners.gather(params, [update for _, update, _ in items])
        outputs = [
            placeholder(p.shape, update.dtype) if full is None else self._orthogonalised(p, full, group)
            for (p, update, group), full in zip(items, fulls)
        ]
        for (p, _, group), ortho in zip(items, owners.scatter(params, outputs)):
            self._apply(p, ortho, group)
