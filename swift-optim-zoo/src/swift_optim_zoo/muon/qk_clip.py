"""QK-clip (Kimi K2, arXiv:2507.20534): record each attention head's largest pre-softmax logit during the forward
passes, and after the optimizer step shrink the query and key projections of the heads whose logit exceeded the
threshold.

Supported attention implementations (found among the model's modules; every other attention-like module -- a
class named ``*Attention*``, or one owning ``q_proj``/``k_proj``, ``qkv_proj``, ``c_attn``, ``Wqkv`` -- is refused
at construction with this list):

* **transformers attention modules** that dispatch through ``ALL_ATTENTION_FUNCTIONS`` (Llama, Mistral, Qwen2,
  Gemma, Phi-3 with separate projections, ... : ``q_proj``, ``k_proj``, ``config.num_attention_heads``,
  ``head_dim``). Their config's ``_attn_implementation`` becomes ``swift_zoo_qk_clip_<previous>``, registered
  with transformers' attention and mask interfaces (the mask function of the previous one), a recording function
  which computes
  ``q k^T * scaling`` on the rotated queries and keys, masks it as the model does (the given mask, else causal),
  takes the max per head, then calls the implementation that was configured (eager, sdpa, ...). This costs one
  extra ``[B, H, T, T]`` product per layer and step. Refused: modules with QK-norm (``q_norm``/``k_norm``: the
  norm undoes a rescaled projection) and multi-head latent attention (``q_a_proj``/``kv_a_proj_with_mqa``,
  whose clip must split the rotary part).
* ``swift_zoo.testing.TinyBlock`` (single-head causal attention without positional rotation), and any module that
  declares ``qk_logits_from_projections = True``: its logits are ``q_proj(x)`` against ``k_proj(x)`` split into
  ``num_heads`` heads, scaled by ``head_dim ** -0.5``, causal unless ``is_causal = False`` (no rotation between
  the projections and the product). The logits are recomputed from the outputs of the two projections.

Grouped-query attention: query head ``h`` is scaled by :math:`(\\tau/S_h)^{\\alpha}` and key head ``j`` by
:math:`(\\tau/\\max_{h \\in j} S_h)^{1-\\alpha}`, so every logit of the group ends at most :math:`\\tau`. Biases of
the projections are scaled with their rows. Under DDP the per-head maxima are all-reduced (max) before clipping, so
every rank clips alike. Under FSDP2 they are all-reduced over the projections' device mesh, and each rank scales
its own rows of the ``Shard(0)`` projections: the rows of a head may lie on two ranks, each scales its part.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from swift_zoo import ConfigError

RECORDING_PREFIX = "swift_zoo_qk_clip_"
_ATTENTION_LIKE_CHILDREN = ("q_proj", "k_proj", "qkv_proj", "c_attn", "Wqkv", "query_key_value", "in_proj_weight")
SUPPORTED = (
    "transformers attention modules with q_proj/k_proj that dispatch through ALL_ATTENTION_FUNCTIONS (Llama, "
    "Mistral, Qwen2, Gemma, ...; no QK-norm, no MLA), swift_zoo.testing.TinyBlock, and modules declaring "
    "qk_logits_from_projections = True (q_proj/k_proj, num_heads, no rotation)"
)


@dataclass
class ClippedAttention:
    """One supported attention module: its projections, head layout and the largest logit seen per head."""

    name: str
    module: nn.Module
    query: nn.Linear
    key: nn.Linear
    heads: int
    kv_heads: int
    max_logits: torch.Tensor | None = field(default=None, repr=False)

    def record(self, logits_max: torch.Tensor) -> None:
        value = logits_max.detach().float()
        self.max_logits = value if self.max_logits is None else torch.maximum(self.max_logits, value)


def _is_attention_like(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention) or "attention" in type(module).__name__.lower():
        return True
    return any(hasattr(module, child) for child in _ATTENTION_LIKE_CHILDREN[2:]) or (
        hasattr(module, "q_proj") and hasattr(module, "k_proj"))


def _is_transformers_attention(module: nn.Module) -> bool:
    config = getattr(module, "config", None)
    return (type(module).__module__.startswith("transformers.") and isinstance(getattr(module, "q_proj", None),
                                                                               nn.Linear)
            and isinstance(getattr(module, "k_proj", None), nn.Linear) and config is not None
            and hasattr(config, "_attn_implementation") and hasattr(module, "head_dim"))


def _refusal(owner: str, name: str, module: nn.Module, why: str) -> ConfigError:
    message = (f"{owner}: attention module {name!r} ({type(module).__module__}.{type(module).__qualname__}) is not "
               f"supported by QK-clip: {why}. Supported: {SUPPORTED}. Pass qk_clip_threshold=None for Muon with "
               "RMS matching and no clip.")
    return ConfigError(message, key="model", expected=SUPPORTED, found=type(module).__qualname__)


def find_attention(model: nn.Module, owner: str) -> list[ClippedAttention]:
    """Every supported attention module of ``model``; raises :class:`ConfigError` on an unsupported one."""
    from swift_zoo.testing._models import TinyBlock

    found: list[ClippedAttention] = []
    inside: set[int] = set()
    for name, module in model.named_modules():
        if id(module) in inside:
            continue
        if isinstance(module, TinyBlock):
            found.append(ClippedAttention(name, module, module.q_proj, module.k_proj, heads=1, kv_heads=1))
        elif getattr(module, "qk_logits_from_projections", False):
            heads = int(getattr(module, "num_heads", 1))
            kv_heads = int(getattr(module, "num_key_value_heads", heads))
            found.append(ClippedAttention(name, module, module.q_proj, module.k_proj, heads=heads, kv_heads=kv_heads))
        elif _is_transformers_attention(module):
            if hasattr(module, "q_norm") or hasattr(module, "k_norm"):
                raise _refusal(owner, name, module, "it normalises q and k (QK-norm), which undoes a rescaled "
                                                    "projection")
            heads = module.q_proj.out_features // module.head_dim
            kv_heads = module.k_proj.out_features // module.head_dim
            found.append(ClippedAttention(name, module, module.q_proj, module.k_proj, heads=heads, kv_heads=kv_heads))
        elif _is_attention_like(module) and not isinstance(module, (nn.Linear,)):
            why = ("multi-head latent attention needs its rotary part clipped separately"
                   if hasattr(module, "q_a_proj") or hasattr(module, "kv_a_proj_with_mqa")
                   else "its per-head pre-softmax logits cannot be observed")
            raise _refusal(owner, name, module, why)
        else:
            continue
        inside.update(id(m) for m in module.modules())
    return found


# ----------------------------------------------------------------------------------------------- recording
def _masked_logits(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float,
                   causal: bool) -> torch.Tensor:
    """``[B, H, Tq, Tk]`` logits with masked positions at -inf (keys repeated for grouped queries)."""
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
    logits = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling
    if mask is not None:
        mask = mask[..., : key.shape[-2]]
        if mask.dtype == torch.bool:
            logits = logits.masked_fill(~mask, float("-inf"))
        else:
            logits = logits + mask.float()
    elif causal and query.shape[-2] > 1:
        tq, tk = query.shape[-2], key.shape[-2]
        allowed = torch.ones(tq, tk, dtype=torch.bool, device=query.device).tril(diagonal=tk - tq)
        logits = logits.masked_fill(~allowed, float("-inf"))
    return logits


def recording_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, *args: Any, **kwargs: Any) -> Any:
    """The attention function QK-clip registers with transformers: records, then runs the configured one."""
    with torch.no_grad():
        scaling = kwargs.get("scaling", getattr(module, "scaling", query.shape[-1] ** -0.5))
        logits = _masked_logits(query, key, attention_mask, scaling, bool(getattr(module, "is_causal", True)))
        for recorder_ref in getattr(module, "_swift_zoo_qk_recorders", ()):
            recorder = recorder_ref()
            if recorder is not None:
                recorder.record(logits.amax(dim=(0, 2, 3)))
    return _inner_attention(module)(module, query, key, value, attention_mask, *args, **kwargs)


def _inner_attention(module: nn.Module) -> Any:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    inner = module.config._attn_implementation.removeprefix(RECORDING_PREFIX)
    if inner in ALL_ATTENTION_FUNCTIONS:
        return ALL_ATTENTION_FUNCTIONS[inner]
    return sys.modules[type(module).__module__].eager_attention_forward


def _route_through_recorder(config: Any) -> None:
    """Point ``config`` at the recording implementation wrapping its current one (once)."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    inner = config._attn_implementation or "eager"
    if inner.startswith(RECORDING_PREFIX):
        return
    name = RECORDING_PREFIX + inner
    AttentionInterface.register(name, recording_attention)
    if inner in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[inner])
    config._attn_implementation = name


def install(attention: Iterable[ClippedAttention]) -> list[Any]:
    """Start recording on every module; returns the hook handles (TinyBlock) to keep."""
    handles = []
    for item in attention:
        if _is_transformers_attention(item.module):
            _route_through_recorder(item.module.config)
            recorders = getattr(item.module, "_swift_zoo_qk_recorders", [])
            recorders.append(weakref.ref(item))
            item.module._swift_zoo_qk_recorders = recorders
        else:
            handles.extend(_projection_hooks(item))
    return handles


def _projection_hooks(item: ClippedAttention) -> list[Any]:
    captured: dict[str, torch.Tensor] = {}
    ref = weakref.ref(item)
    causal = bool(getattr(item.module, "is_causal", True))

    def on_query(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        captured["q"] = output.detach()

    def on_key(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        recorder = ref()
        query = captured.pop("q", None)
        if recorder is None or query is None:
            return
        heads = (recorder.heads, recorder.kv_heads)
        q, k = (x.reshape(*x.shape[:-1], h, -1).transpose(-3, -2) for x, h in zip((query, output.detach()), heads))
        logits = _masked_logits(q, k, None, q.shape[-1] ** -0.5, causal=causal)  # q, k: [B, H, T, d]
        recorder.record(logits.amax(dim=(0, 2, 3)))

    return [item.query.register_forward_hook(on_query), item.key.register_forward_hook(on_key)]


# ----------------------------------------------------------------------------------------------- clipping
@torch.no_grad()
def clip(attention: Iterable[ClippedAttention], threshold: float, alpha: float) -> dict[str, torch.Tensor]:
    """Rescale the projections of every head whose recorded logit exceeds ``threshold``; reset the records.
    Returns the per-head maxima that were used (all-reduced under DDP)."""
    used: dict[str, torch.Tensor] = {}
    for item in attention:
        logits, item.max_logits = item.max_logits, None
        if logits is None:
            continue
        logits = _all_ranks_max(logits, item.query.weight)
        used[item.name] = logits
        if float(logits.max()) <= threshold:
            continue
        ratio = (threshold / logits.clamp(min=threshold)).to(torch.float64)
        query_scale = ratio.pow(alpha)
        key_scale = ratio.view(item.kv_heads, item.heads // item.kv_heads).amin(dim=1).pow(1 - alpha)
        _scale_rows(item.query, query_scale, owner=item.name)
        _scale_rows(item.key, key_scale, owner=item.name)
    return used


def _scale_rows(linear: nn.Linear, head_scale: torch.Tensor, *, owner: str) -> None:
    """Scale the rows of each head of ``linear`` (weight and bias) by ``head_scale``: the local rows of a
    ``Shard(0)`` DTensor (FSDP2), every row otherwise."""
    rows = linear.weight.shape[0] // head_scale.numel()
    scale = head_scale.repeat_interleave(rows)
    for tensor in (linear.weight, linear.bias):
        if tensor is None:
            continue
        local, mine = _local_rows(tensor, scale, owner)
        view = mine.to(device=local.device, dtype=torch.float32).view(-1, *([1] * (local.dim() - 1)))
        local.copy_((local.float() * view).to(local.dtype))


def _local_rows(tensor: torch.Tensor, scale: torch.Tensor, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``tensor``'s local rows and their scale factors (all of them for a plain or replicated tensor)."""
    from swift_zoo.optim import is_dtensor, is_row_sharded, local_tensor, row_range

    if not is_dtensor(tensor):
        return tensor, scale
    if is_row_sharded(tensor):
        mesh = tensor.device_mesh
        start, stop = row_range(tensor.shape[0], mesh.size(), mesh.get_local_rank())
        return local_tensor(tensor), scale[start:stop]
    from torch.distributed.tensor import Replicate

    if all(isinstance(p, Replicate) for p in tensor.placements):
        return local_tensor(tensor), scale
    from swift_zoo import UnsupportedShardingError

    message = (f"optimizer 'muon_clip': QK-clip rescales the rows of each head of {owner!r}, which needs the "
               f"projections split by rows (Shard(0) on a 1-D mesh, FSDP2's default) or replicated; found placements "
               f"{tuple(tensor.placements)} on a {tensor.device_mesh.ndim}-D mesh. Shard with fully_shard's default.")
    raise UnsupportedShardingError(message)


def _all_ranks_max(logits: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The per-head maxima over every rank that trains on its own batch: over the projection's device mesh (every
    dimension) for an FSDP2 DTensor, over the default process group otherwise (DDP); as they are on one process."""
    import torch.distributed as dist

    from swift_zoo.optim import is_dtensor

    if is_dtensor(weight):
        groups = weight.device_mesh.get_all_groups()
    elif dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        groups = [None]
    else:
        return logits
    logits = logits.clone()
    for group in groups:
        dist.all_reduce(logits, op=dist.ReduceOp.MAX, group=group)
    return logits
