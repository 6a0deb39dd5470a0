"""The inner AdamW that hybrid optimizers (GaLore, APOLLO, Muon...) apply to the parameters their
method does not act on (embeddings, head, norms, biases), inside the same optimizer object.

State per parameter: ``exp_avg``, ``exp_avg_sq`` (parameter dtype) and ``step`` (float32 scalar
tensor), as torch's AdamW keeps them, so ``state_dict()`` stays ``weights_only``-loadable. Under FSDP2 the
moments are DTensors like their parameter and the rule runs on the local rows; ``step`` is a plain tensor
(the same on every rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.adamw import adamw as _functional_adamw

from swift_optim_zoo._shard_aligned import Piece, aligned_pieces, piece_views, write_back
from swift_zoo.optim import local_tensor

ADAMW_STATE_KEYS = ("exp_avg", "exp_avg_sq", "step")


def adamw_state_bytes(param: torch.Tensor) -> int:
    """Bytes the inner AdamW keeps for ``param``: two moments and a 4-byte step."""
    return 2 * param.numel() * param.element_size() + 4


def inner_adamw_step(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    group: dict[str, Any],
    *,
    betas_key: str = "betas",
    amsgrad: bool = False,
) -> None:
    """One AdamW step on ``params`` (those with a gradient), using ``group``'s hyperparameters.

    Reads ``lr``, ``betas`` (or ``betas_key``), ``eps`` and ``weight_decay`` from ``group``. Uses
    torch's fused kernel when every tensor is a float tensor on CPU or CUDA, else its foreach path.
    ``amsgrad`` keeps ``max_exp_avg_sq`` too (torch's AdamW state). On FSDP2 shards the fused CPU kernel
    runs on :func:`~swift_optim_zoo._shard_aligned.aligned_pieces`, so every element gets the arithmetic it
    gets on the whole tensor.
    """
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")
    for p in with_grad:
        if p.grad.is_sparse:
            message = "inner AdamW: sparse gradients are not supported"
            raise RuntimeError(message)
        state = optimizer.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        for key in keys:
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
    fused = all(local_tensor(p).device.type in {"cpu", "cuda"} and p.is_floating_point() for p in with_grad)
    tensors: list[list[torch.Tensor]] = [[], [], [], [], []]  # params, grads, exp_avgs, exp_avg_sqs, maxima
    steps: list[torch.Tensor] = []
    scratch: list[tuple[torch.Tensor, Piece, list[torch.Tensor], torch.Tensor]] = []
    for p in with_grad:
        state = optimizer.state[p]
        owned = [p, p.grad, *(state[key] for key in keys)]
        pieces = aligned_pieces(p) if fused else [Piece(0, 0)]
        if len(pieces) == 1 and not pieces[0].block:  # the whole local tensor, in place
            for slot, tensor in enumerate(owned):
                tensors[slot].append(local_tensor(tensor))
            steps.append(state["step"])
            continue
        for piece in pieces:
            views = [piece_views(tensor, piece) for tensor in owned]
            for slot, view in enumerate(views):
                tensors[slot].append(view)
            steps.append(state["step"].clone())
            scratch.append((p, piece, views, steps[-1]))
    beta1, beta2 = group[betas_key]
    _functional_adamw(
        tensors[0], tensors[1], tensors[2], tensors[3], tensors[4], steps,
        foreach=None if fused else True, fused=fused or None,
        amsgrad=amsgrad, beta1=beta1, beta2=beta2, lr=group["lr"],
        weight_decay=group.get("weight_decay", 0.0), eps=group.get("eps", 1e-8),
        maximize=False, capturable=False, differentiable=False, grad_scale=None, found_inf=None,
        has_complex=False,
    )
    for p, piece, views, step in scratch:
        state = optimizer.state[p]
        for tensor, view in zip([p, None, *(state[key] for key in keys)], views):
            if tensor is not None:
                write_back(tensor, piece, view)
        state["step"].copy_(step)
