"""Adam-mini's partition of parameters into blocks, from parameter roles and module structure.

Each parameter is viewed as a matrix ``[R, C]`` whose rows are output neurons (or tokens), and
its rows are cut into blocks: ``block_rows = [[n, b], ...]`` reads "the next ``n`` rows, in
blocks of ``b`` rows". One second-moment scalar is kept per block.

* embeddings, tied embeddings and the output head: one block per token row (the paper);
* attention query and key projections: one block per head (``b`` = head dim);
* other hidden matrices (value, output projection, MLP): one block per output neuron;
  convolution kernels ``[out, ...]`` per output channel; expert stacks ``[E, d1, d2]`` per
  ``(expert, d1)`` row; transformers' GPT-2 ``Conv1D`` (``[in, out]``) per output column;
* norms, biases and anything else: one block for the whole tensor.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from swift_zoo import ConfigError
from swift_zoo.optim import is_row_sharded, local_tensor, row_range
from swift_zoo.params import ParamRole, classify_parameters

_QUERY_NAMES = ("q_proj", "wq", "query", "q", "to_q", "q_lin")
_KEY_NAMES = ("k_proj", "wk", "key", "k", "to_k", "k_lin")
_HEAD_COUNT_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "nhead")
_ROW_ROLES = {ParamRole.EMBEDDING, ParamRole.TIED_EMBEDDING, ParamRole.OUTPUT_HEAD, ParamRole.HIDDEN_MATRIX}


@dataclass(frozen=True)
class BlockLayout:
    """How a parameter is viewed as ``[R, C]`` (``layout``) and cut into blocks (``block_rows``).

    ``layout``: ``"rows"`` = ``view(shape[0], -1)``; ``"last"`` = ``view(-1, shape[-1])``;
    ``"columns"`` = the transpose of ``view(shape[0], -1)``; ``"whole"`` = ``view(1, -1)``.
    """

    layout: str
    block_rows: tuple[tuple[int, int], ...]
    kind: str  # "token", "head", "neuron", "tensor": for reports

    @property
    def num_blocks(self) -> int:
        return sum(n // b for n, b in self.block_rows)


def matrix_view(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """``tensor`` viewed as the ``[R, C]`` matrix of ``layout`` (a view: in-place ops reach ``tensor``)."""
    if layout == "rows":
        return tensor.view(tensor.shape[0], -1)
    if layout == "last":
        return tensor.view(-1, tensor.shape[-1])
    if layout == "columns":
        return tensor.view(tensor.shape[0], -1).t()
    return tensor.view(1, -1)


def layout_rows(shape: torch.Size | tuple[int, ...], layout: str) -> int:
    """Rows ``R`` of the ``[R, C]`` matrix of ``layout`` for a tensor of ``shape``."""
    numel = math.prod(shape)
    if layout == "rows":
        return int(shape[0])
    if layout == "last":
        return numel // int(shape[-1]) if shape[-1] else 0
    if layout == "columns":
        return numel // int(shape[0]) if shape[0] else 0
    return 1


def local_row_span(param: torch.Tensor, layout: str) -> tuple[int, int | None]:
    """For a row-sharded ``param`` (FSDP2): ``(first row, rows)`` of the layout's matrix that this rank holds
    whole, or ``(0, None)`` when every row of the layout crosses the shards (``columns``, ``whole``)."""
    if layout not in ("rows", "last"):
        return 0, None
    mesh = param.device_mesh
    first, stop = row_range(param.shape[0], mesh.size(), mesh.get_local_rank())
    per_slice = layout_rows(param.shape, layout) // param.shape[0] if param.shape[0] else 0
    return first * per_slice, (stop - first) * per_slice


def local_rows(tensor: torch.Tensor, layout: str, param: torch.Tensor) -> torch.Tensor:
    """The local part of ``tensor`` (shaped like ``param``; a DTensor's local rows) as rows of ``layout``'s
    matrix: its own rows (``rows``, ``last``) or a part of every row (``columns``, ``whole``). A view."""
    local = local_tensor(tensor)
    if not is_row_sharded(param):
        return matrix_view(local, layout)
    shape, numel = param.shape, param.numel()
    if layout == "rows":
        return local.view(local.shape[0], numel // shape[0])
    if layout == "last":
        return local.view(local.numel() // shape[-1], shape[-1])
    if layout == "columns":
        return local.view(local.shape[0], numel // shape[0]).t()
    return local.view(1, local.numel())


def layout_for_role(param: torch.Tensor, role: ParamRole, *, columns: bool = False) -> BlockLayout:
    """The default layout of a parameter of ``role`` (no head structure)."""
    if param.dim() >= 2 and role in _ROW_ROLES:
        rows = param.shape[-1] if columns else param.shape[0]
        kind = "neuron" if role is ParamRole.HIDDEN_MATRIX else "token"
        return BlockLayout("columns" if columns else "rows", ((int(rows), 1),), kind)
    if param.dim() >= 2 and role is ParamRole.EXPERT_STACK:
        rows = param.numel() // param.shape[-1]
        return BlockLayout("last", ((int(rows), 1),), "neuron")
    return BlockLayout("whole", ((1, 1),), "tensor")


def _head_count(module: nn.Module, num_heads: int | None) -> int | None:
    if num_heads is not None:
        return num_heads
    for attr in _HEAD_COUNT_ATTRS:
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    config = getattr(module, "config", None)
    value = getattr(config, "num_attention_heads", None)
    return value if isinstance(value, int) and value > 0 else None


def _query_key_layouts(model: nn.Module, num_heads: int | None) -> dict[int, BlockLayout]:
    """Per-head layouts for query/key weights, found by module structure, keyed by ``id(param)``."""
    found: dict[int, BlockLayout] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            heads = num_heads or module.num_heads
            dim = module.embed_dim
            head_dim = dim // heads
            found[id(module.in_proj_weight)] = BlockLayout(
                "rows", ((dim, head_dim), (dim, head_dim), (dim, 1)), "head")
            continue
        children = dict(module.named_children())
        query = next((children[n] for n in _QUERY_NAMES if isinstance(children.get(n), nn.Linear)), None)
        key = next((children[n] for n in _KEY_NAMES if isinstance(children.get(n), nn.Linear)), None)
        if query is None or key is None:
            continue
        heads = _head_count(module, num_heads)
        if heads is None:
            warnings.warn(
                f"adam_mini: attention module {module_name!r} has query/key projections but no head count "
                f"(looked for {', '.join(_HEAD_COUNT_ATTRS)}); its query/key get one block per output "
                "neuron. Pass num_heads=... for per-head blocks.",
                stacklevel=3,
            )
            continue
        if query.out_features % heads:
            message = (
                f"optimizer 'adam_mini': the query of {module_name!r} has {query.out_features} outputs, "
                f"not a multiple of num_heads={heads}"
            )
            raise ConfigError(message, key="num_heads", expected=f"a divisor of {query.out_features}", found=heads)
        head_dim = query.out_features // heads
        for projection in (query, key):
            if projection.out_features % head_dim:
                message = (
                    f"optimizer 'adam_mini': {module_name!r} key/query outputs {projection.out_features} "
                    f"are not a multiple of the head dim {head_dim}"
                )
                raise ConfigError(message, key="num_heads", expected="heads dividing the key width", found=heads)
            found[id(projection.weight)] = BlockLayout(
                "rows", ((projection.out_features, head_dim),), "head")
    return found


def block_layouts(model: nn.Module, *, num_heads: int | None = None) -> list[tuple[str, nn.Parameter, ParamRole, BlockLayout]]:
    """``(name, parameter, role, layout)`` for every trainable parameter of ``model``."""
    roles = classify_parameters(model, trainable_only=True)
    heads = _query_key_layouts(model, num_heads)
    column_params = {
        id(m.weight) for m in model.modules()
        if type(m).__name__ == "Conv1D" and isinstance(getattr(m, "weight", None), torch.Tensor)
    }
    params = dict(model.named_parameters())
    result = []
    for name, role in roles.items():
        param = params[name]
        layout = heads.get(id(param)) or layout_for_role(param, role, columns=id(param) in column_params)
        result.append((name, param, role, layout))
    return result


def layout_from_group(group: dict[str, Any], param: torch.Tensor, role: ParamRole) -> BlockLayout:
    """A layout given in a param group (``layout``, ``block_rows``), else the role's default."""
    if "block_rows" in group and "layout" in group:
        return BlockLayout(group["layout"], tuple(tuple(pair) for pair in group["block_rows"]),
                           group.get("block_kind", "custom"))
    return layout_for_role(param, role)
