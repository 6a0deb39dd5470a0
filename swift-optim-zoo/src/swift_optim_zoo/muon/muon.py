"""Muon (Keller Jordan, 2024; RMS matching from arXiv:2502.16982) with an inner AdamW in the same object."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from swift_optim_zoo._inner_adamw import adamw_state_bytes, inner_adamw_step
from swift_optim_zoo.muon.newton_schulz import (
    KELLER_COEFFICIENTS,
    batches_by_shape,
    newton_schulz_orthogonalize_batch,
)
from swift_zoo import ConfigError
from swift_zoo.optim import group_role
from swift_zoo.params import MATRIX_ROLES, NO_DECAY_ROLES, ParamRole

_NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
_ADAMW_KEYS = ("adamw_lr", "adamw_betas", "adamw_eps", "adamw_wd")


def _require(ok: bool, key: str, expected: str, found: Any) -> None:
    if not ok:
        message = f"optimizer 'muon': {key!r} must be {expected}, got {found!r}"
        raise ConfigError(message, key=key, expected=expected, found=found)


def lr_scale(shape: tuple[int, int], adjust_lr_fn: str) -> float:
    """The factor Muon multiplies its lr by for an ``[A, B]`` matrix.

    ``original`` (Keller): ``max(1, A/B) ** 0.5``; ``match_rms_adamw`` (Moonlight): ``0.2 * max(A, B) ** 0.5``,
    which gives the update about AdamW's RMS (0.2), so AdamW's lr and weight decay carry over.
    """
    rows, cols = shape
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols))


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


class Muon(torch.optim.Optimizer):
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

    Runs on one process: no ``torch.distributed`` needed. Not for FSDP / ZeRO-3 sharded
    parameters without a gather (Newton–Schulz needs whole matrices).

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
        _require(lr >= 0, "lr", "a float >= 0", lr)
        _require(0 <= momentum < 1, "momentum", "a float in [0, 1)", momentum)
        _require(weight_decay >= 0, "weight_decay", "a float >= 0", weight_decay)
        _require(isinstance(ns_steps, int) and ns_steps >= 1, "ns_steps", "an int >= 1", ns_steps)
        _require(len(tuple(ns_coefficients)) == 3, "ns_coefficients", "3 floats (a, b, c)", ns_coefficients)
        _require(eps >= 0, "eps", "a float >= 0", eps)
        _require(adjust_lr_fn in ("original", "match_rms_adamw"), "adjust_lr_fn",
                 "one of 'original', 'match_rms_adamw'", adjust_lr_fn)
        _require(ns_dtype in _NS_DTYPES, "ns_dtype", "one of " + ", ".join(map(repr, _NS_DTYPES)), ns_dtype)
        _require(adamw_lr >= 0, "adamw_lr", "a float >= 0", adamw_lr)
        _require(len(tuple(adamw_betas)) == 2 and all(0 <= b < 1 for b in adamw_betas), "adamw_betas",
                 "two floats in [0, 1)", adamw_betas)
        _require(adamw_eps >= 0, "adamw_eps", "a float >= 0", adamw_eps)
        _require(adamw_wd >= 0, "adamw_wd", "a float >= 0", adamw_wd)
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
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon_group_step(group)
            else:
                inner_adamw_step(self, group["params"], group)
        return loss

    def _muon_group_step(self, group: dict[str, Any]) -> None:
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
            grads.append(p.grad)
            buffers.append(state["momentum_buffer"])
        if not params:
            return
        lr, momentum = group["lr"], group["momentum"]
        torch._foreach_lerp_(buffers, grads, 1 - momentum)
        if group["weight_decay"] != 0:
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
        dtype = _NS_DTYPES[group["ns_dtype"]]
        per_expert = [group_role(group, p) is ParamRole.EXPERT_STACK for p in params]
        shapes = [tuple(matrix_view(p, per_expert=e).shape) for p, e in zip(params, per_expert)]
        itemsize = torch.empty((), dtype=dtype).element_size()
        for batch in batches_by_shape(shapes, itemsize=itemsize):  # same-shape matrices iterate together
            updates = [grads[i].lerp(buffers[i], momentum) if group["nesterov"] else buffers[i] for i in batch]
            orthos = newton_schulz_orthogonalize_batch(
                [matrix_view(u, per_expert=per_expert[i]) for u, i in zip(updates, batch)], steps=group["ns_steps"],
                coefficients=group["ns_coefficients"], eps=group["eps"], dtype=dtype,
            )
            del updates
            for i, ortho in zip(batch, orthos):
                scale = lr_scale(tuple(ortho.shape[-2:]), group["adjust_lr_fn"])
                params[i].add_(ortho.reshape(params[i].shape), alpha=-lr * scale)
