"""Which positions of a declared input its mask declares ignored, and keeping gradients away from them.

One reading of the declarations (:class:`TensorInput` ``masked_by`` / ``mask_shift``, the mask's ``role``),
shared by :class:`BaseLoss` -- which guards the gradient of every masked differentiable input -- and the
conformance suite's ``check_masking``, which perturbs exactly these positions.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from swift_zoo.losses._inputs import TensorInput
from swift_zoo.ops._masked import zero_gradient_where


def ignored_positions(spec: TensorInput, declared: Mapping[str, TensorInput], inputs: Mapping[str, torch.Tensor],
                      ignore_index: int) -> torch.Tensor | None:
    """Bool tensor of the positions of ``inputs[spec.key]`` that its ``masked_by`` input declares ignored.

    The result has the mask's dims (shifted by ``mask_shift``: position ``t`` is ignored when the mask's
    ``t + mask_shift`` is, or is out of range) followed by size-1 dims, so it broadcasts against the data.
    A mask of role ``labels`` ignores ``ignore_index``; any other mask ignores its zeros. ``None`` when the
    input is not masked, absent, or not floating point.
    """
    data = inputs.get(spec.key)
    mask = inputs.get(spec.masked_by) if spec.masked_by else None
    if data is None or mask is None or not data.is_floating_point():
        return None
    mask_spec = declared.get(spec.masked_by)
    ignored = mask == ignore_index if mask_spec is not None and mask_spec.role == "labels" else mask == 0
    shift = spec.mask_shift
    if shift:
        length = ignored.shape[-1]
        shifted = torch.ones_like(ignored)
        if 0 < shift < length:
            shifted[..., : length - shift] = ignored[..., shift:]
        elif 0 < -shift < length:
            shifted[..., -shift:] = ignored[..., : length + shift]
        ignored = shifted
    ignored = ignored.to(data.device)
    while ignored.dim() < data.dim():
        ignored = ignored.unsqueeze(-1)
    return ignored


def guard_masked_gradients(declared: tuple[TensorInput, ...], inputs: dict[str, torch.Tensor],
                           ignore_index: int) -> dict[str, torch.Tensor]:
    """``inputs`` with every masked, differentiable input that requires grad wrapped by
    :func:`~swift_zoo.ops.zero_gradient_where`: NaN or Inf at ignored positions never reach its gradient."""
    if not torch.is_grad_enabled():
        return inputs
    by_key = {spec.key: spec for spec in declared}
    guarded = dict(inputs)
    for spec in declared:
        value = inputs.get(spec.key)
        if not spec.differentiable or spec.masked_by is None or value is None or not value.requires_grad:
            continue
        ignored = ignored_positions(spec, by_key, inputs, ignore_index)
        if ignored is not None:
            guarded[spec.key] = zero_gradient_where(value, ignored)
    return guarded
