"""Adam-mini (Zhang et al., "Adam-mini: Use Fewer Learning Rates To Gain More", arXiv:2406.16793)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from swift_optim_zoo import _native_rules
from swift_optim_zoo._catalogue._distributed import ADAM_MINI
from swift_optim_zoo._fused import FusedKernel, alias, check_fused
from swift_optim_zoo.adam_mini.blocks import (
    BlockLayout,
    block_layouts,
    layout_from_group,
    layout_rows,
    local_row_span,
    local_rows,
    matrix_view,
)
from swift_zoo import ConfigError
from swift_zoo.optim import (
    ZooOptimizer,
    group_role,
    is_row_sharded,
    local_tensor,
    require_betas,
    require_int,
    require_non_negative,
    sum_over_shards,
)
from swift_zoo.params import NO_DECAY_ROLES, ParamRole


class AdamMini(ZooOptimizer):
    r"""Adam-mini: Adam's first moment per coordinate, its second moment one scalar per block.

    For a block :math:`B` of parameter coordinates with gradient :math:`g`:

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\qquad
        v_B \leftarrow \beta_2 v_B + (1-\beta_2)\,\mathrm{mean}_{i\in B}\, g_i^2,\\
        \theta \leftarrow \theta(1 - \eta\lambda)
          - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v_B / (1-\beta_2^t)} + \epsilon}

    Blocks (:mod:`swift_optim_zoo.adam_mini.blocks`) come from parameter roles
    (:mod:`swift_zoo.params`) and module structure, not from name substrings alone: embeddings
    and the output head one block per token row (the paper's rule); attention query/key one block
    per head; other hidden matrices one per output neuron; norms, biases and other tensors one
    per tensor. Query/key are found as ``nn.Linear`` children named ``q_proj``/``k_proj`` (or
    ``wq``/``wk``, ``query``/``key``...) of one module, and ``nn.MultiheadAttention``'s
    ``in_proj_weight`` (q, k per head; v per neuron). The head count is ``num_heads`` when given,
    else the attention module's ``num_heads`` / ``num_attention_heads`` / ``n_head`` (or its
    ``config``); grouped-query keys get ``k_out / head_dim`` blocks. Fused QKV of GPT-2's
    ``Conv1D`` gets per-neuron blocks (a documented simplification).

    Hence ``needs_model=True``: the constructor takes the model. It also accepts parameters or
    param groups (roles from ``"role"`` or shapes: >= 2-D per row, else per tensor; a group may
    give ``"layout"`` and ``"block_rows"`` itself). Every parameter gets its own param group,
    carrying ``role``, ``layout`` and ``block_rows``. Norms and biases get no weight decay.

    Defaults (the reference's): ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0``.
    State: ``exp_avg`` (parameter dtype), ``exp_avg_sq`` (one value per block, parameter dtype),
    ``step`` (float32): about half of AdamW. ``fused=True`` runs the per-block rule in one pass over
    memory (a block is read again while in cache): a C kernel for float32 CPU tensors
    (:mod:`swift_optim_zoo._native_rules`), else compiled (:mod:`swift_optim_zoo._fused`); layouts
    with column blocks stay eager.

    Under FSDP2 each rank computes the mean square of its own rows and one all-reduce for all parameters
    gives every row's (blocks that straddle ranks add their parts; ``m`` words per ``m x n`` matrix); the
    per-block second moment is then the same on every rank, ``exp_avg`` sharded like the parameter. The
    eager rule runs there, ``fused`` or not. Flat partitions (ZeRO, FSDP1 flat parameters) are refused.

    .. code-block:: yaml

        training_args:
          optimizer_type: adam_mini
          optimizer_kwargs: {lr: 1.0e-3, weight_decay: 0.1, num_heads: 32}
    """

    name = "adam_mini"
    distributed = ADAM_MINI
    needs_model = True

    def __init__(
        self,
        model_or_params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        num_heads: int | None = None,
        fused: bool = False,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        require_non_negative(owner, "lr", lr)
        require_betas(owner, "betas", betas)
        require_non_negative(owner, "eps", eps)
        require_non_negative(owner, "weight_decay", weight_decay)
        if num_heads is not None:
            require_int(owner, "num_heads", num_heads, low=1, high=1 << 16)
        check_fused(self.name, fused)
        self.num_heads = num_heads
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "fused": fused}
        if isinstance(model_or_params, nn.Module):
            groups = []
            for name, param, role, layout in block_layouts(model_or_params, num_heads=num_heads):
                groups.append(_group(param, name, role, layout, weight_decay))
            if not groups:
                message = "optimizer 'adam_mini': the model has no trainable parameter"
                raise ConfigError(message, expected="a model with trainable parameters", found=0)
            super().__init__(groups, defaults)
        else:
            super().__init__(model_or_params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for small test problems."""
        return {"lr": 1e-2}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add ``param_group``, one group per parameter, each with its block layout."""
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        names = param_group.get("param_names")
        for i, param in enumerate(params):
            role = group_role(param_group, param)
            layout = layout_from_group(param_group, param, role)
            group = {**param_group, **_group(param, names[i] if names else None, role, layout, None)}
            if "weight_decay" not in param_group and role in NO_DECAY_ROLES:
                group["weight_decay"] = 0.0
            super().add_param_group(group)

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """``exp_avg`` (parameter-sized) + one value per block, in the parameter's dtype, + a 4-byte step."""
        blocks = sum(n // b for n, b in group["block_rows"])
        return (param.numel() + blocks) * param.element_size() + 4

    def _step(self) -> None:
        sharded: list[tuple[torch.Tensor, dict[str, Any]]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    message = "optimizer 'adam_mini': sparse gradients are not supported"
                    raise RuntimeError(message)
                if is_row_sharded(p):
                    sharded.append((p, group))
                else:
                    self._param_step(p, group)
        if sharded:  # FSDP2: every row's mean square whole, from one all-reduce of the ranks' parts
            parts = [self._row_mean_squares(p, group, self._advance(p, group)) for p, group in sharded]
            totals = sum_over_shards([p for p, _ in sharded], parts)
            for (p, group), row_mean_sq in zip(sharded, totals):
                self._write(p, group, self.state[p], row_mean_sq)

    def _advance(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The state of ``p`` (created on first use) with its step advanced."""
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            state["exp_avg_sq"] = torch.zeros(sum(n // b for n, b in group["block_rows"]), dtype=p.dtype,
                                              device=p.device)
        state["step"] += 1
        return state

    def _param_step(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        state = self._advance(p, group)
        layout, block_rows = group["layout"], group["block_rows"]
        if group.get("fused", False) and layout != "columns" and p.grad.dtype == p.dtype and p.is_contiguous():
            beta1, beta2 = group["betas"]
            step = float(state["step"])
            scalars = (group["lr"], beta1, beta2, group["eps"], group["weight_decay"], 1 - beta1**step,
                       1 - beta2**step)
            _fused_param_step(p, p.grad.contiguous(), state["exp_avg"], state["exp_avg_sq"], layout, block_rows,
                              scalars)
            return
        self._write(p, group, state, self._row_mean_squares(p, group, state))

    @staticmethod
    def _row_mean_squares(p: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
        """Momentum update, then the mean of squares of the gradient per row of the block layout. For a
        row-sharded ``p``: this rank's part of every row's mean (its own rows whole, zeros elsewhere; partial
        sums for layouts whose rows cross the shards), to be summed over the ranks."""
        local_tensor(state["exp_avg"]).lerp_(local_tensor(p.grad), 1 - group["betas"][0])
        compute = torch.promote_types(p.dtype, torch.float32)
        grad = p.grad if is_row_sharded(p) else p.grad.contiguous()
        grad_rows = local_rows(grad, group["layout"], p)
        cols = p.numel() // max(1, layout_rows(p.shape, group["layout"]))
        # mean of squares per row without a gradient-sized temporary
        mean_sq = torch.linalg.vector_norm(grad_rows, dim=1, dtype=compute).square_().div_(cols)
        if not is_row_sharded(p):
            return mean_sq
        start, count = local_row_span(p, group["layout"])
        if count is None:  # every row crosses the shards: this rank's partial sums
            return mean_sq
        everything = mean_sq.new_zeros(layout_rows(p.shape, group["layout"]))
        everything[start:start + count] = mean_sq
        return everything

    @staticmethod
    def _write(p: torch.Tensor, group: dict[str, Any], state: dict[str, Any], row_mean_sq: torch.Tensor) -> None:
        """The second moment per block from the rows' mean squares, then the write on the local rows."""
        beta1, beta2 = group["betas"]
        lr, step, block_rows = group["lr"], float(state["step"]), group["block_rows"]
        exp_avg_sq = state["exp_avg_sq"]
        compute = torch.promote_types(p.dtype, torch.float32)
        exp_avg_sq.mul_(beta2).add_(_block_means(row_mean_sq, block_rows), alpha=1 - beta2)
        denom = (exp_avg_sq.to(compute) / (1 - beta2**step)).sqrt_().add_(group["eps"])
        if group["weight_decay"] != 0:
            local_tensor(p).mul_(1 - lr * group["weight_decay"])
        row_scale = _per_row(denom.reciprocal_(), block_rows).mul_(lr / (1 - beta1**step))
        if is_row_sharded(p):
            start, count = local_row_span(p, group["layout"])
            if count is not None:
                row_scale = row_scale[start:start + count]
        local_rows(p, group["layout"], p).addcmul_(local_rows(state["exp_avg"], group["layout"], p),
                                                   row_scale.unsqueeze(1).to(p.dtype), value=-1)


def _adam_mini_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                    hyper: torch.Tensor) -> None:
    """The step on ``[blocks, block_size]`` views, ``exp_avg_sq`` ``[blocks]``; ``hyper`` = ``(lr, beta1, beta2,
    eps, weight_decay, 1 - beta1^t, 1 - beta2^t)``."""
    lr, beta1, beta2, eps, weight_decay, correction1, correction2 = (hyper[i] for i in range(7))
    exp_avg.mul_(beta1).add_(grad * (1 - beta1))
    mean_sq = grad.to(hyper.dtype).square().mean(dim=1)
    exp_avg_sq.mul_(beta2).add_(mean_sq * (1 - beta2))
    denom = (exp_avg_sq.to(hyper.dtype) / correction2).sqrt() + eps
    param.mul_(1 - lr * weight_decay)
    param.sub_(exp_avg * ((lr / correction1) / denom).unsqueeze(1))


ADAM_MINI_KERNEL = FusedKernel(_adam_mini_rule, native=_native_rules.adam_mini)


def _fused_param_step(p: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                      layout: str, block_rows: list[list[int]], scalars: tuple[float, ...]) -> None:
    """One kernel call per run of equal blocks: rows of a block are contiguous, so a run of ``n`` rows
    cut into blocks of ``b`` rows is the ``[n / b, b * cols]`` matrix."""
    matrices = [matrix_view(t, layout) for t in (p, grad, exp_avg)]
    cols = matrices[0].shape[1]
    row, block = 0, 0
    for n, b in block_rows:
        blocks = [alias(m[row:row + n], n // b, b * cols) for m in matrices]  # writes reach p and exp_avg
        ADAM_MINI_KERNEL(*blocks, alias(exp_avg_sq[block:block + n // b]), scalars=scalars, owner="adam_mini")
        row, block = row + n, block + n // b


def _block_means(row_values: torch.Tensor, block_rows: list[list[int]]) -> torch.Tensor:
    """Per-block means of per-row means (every row of a block has the same length)."""
    if len(block_rows) == 1 and block_rows[0][1] == 1:
        return row_values
    parts, start = [], 0
    for n, b in block_rows:
        parts.append(row_values[start:start + n].view(n // b, b).mean(dim=1))
        start += n
    return torch.cat(parts)


def _per_row(block_values: torch.Tensor, block_rows: list[list[int]]) -> torch.Tensor:
    """Per-block values repeated over the rows of each block."""
    if len(block_rows) == 1 and block_rows[0][1] == 1:
        return block_values
    parts, start = [], 0
    for n, b in block_rows:
        parts.append(block_values[start:start + n // b].repeat_interleave(b))
        start += n // b
    return torch.cat(parts)


def _group(param: torch.Tensor, name: str | None, role: ParamRole, layout: BlockLayout,
           weight_decay: float | None) -> dict[str, Any]:
    group: dict[str, Any] = {
        "params": [param],
        "role": role.value,
        "layout": layout.layout,
        "block_rows": [list(pair) for pair in layout.block_rows],
        "block_kind": layout.kind,
    }
    if name is not None:
        group["param_names"] = [name]
    if weight_decay is not None:
        group["weight_decay"] = 0.0 if role in NO_DECAY_ROLES else weight_decay
    return group
