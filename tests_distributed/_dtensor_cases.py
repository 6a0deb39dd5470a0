"""What each rank runs for the sharded element-wise test: the zoo's element-wise optimizers on DTensor parameters
(``Shard(0)`` over a 1-D mesh of every rank, as FSDP2's ``fully_shard`` leaves them) against the same optimizer on
whole tensors, in one process per rank.

Each rank builds the same parameters and gradients (seeded), steps a plain copy and a sharded copy, and returns
the largest difference of the gathered (``full_tensor``) parameters from the plain ones. Methods with
whole-tensor sums (LAMB's trust ratio, StableAdamW's RMS, MARS' norm, Prodigy's global sums, the cautious mask's
count) only agree if those sums are all-reduced; a control that reduces only the local shard must disagree.
"""

from __future__ import annotations

import traceback
import warnings
from typing import Any

import torch

STEPS = 4
CONTROL = "control:lamb_on_local_shards"
SHAPES = ((512, 64), (96, 40), (64,))  # rows divisible by 2 ranks; 512x64 holds whole 8-bit blocks per shard
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "adopt": ("adopt", {"lr": 1e-2, "weight_decay": 0.1}),
    "adopt_cautious": ("adopt", {"lr": 1e-2, "cautious": True}),
    "ademamix_cautious": ("ademamix", {"lr": 1e-2, "cautious": True, "weight_decay": 0.1}),
    "mars": ("mars", {"lr": 1e-2, "weight_decay": 0.1}),
    "lamb": ("lamb", {"lr": 1e-2, "weight_decay": 0.1}),
    "lamb_cautious": ("lamb", {"lr": 1e-2, "cautious": True}),
    "adan": ("adan", {"lr": 1e-2, "weight_decay": 0.1}),
    "prodigy": ("prodigy", {"d0": 1e-3}),
    "prodigy_fused": ("prodigy", {"d0": 1e-3, "fused": True}),
    "stable_adamw": ("stable_adamw", {"lr": 1e-2}),
    "sgd": ("sgd", {"lr": 1e-2, "nesterov": True, "weight_decay": 0.1}),
    "adamw_cautious": ("adamw", {"lr": 1e-2, "cautious": True}),
    "lion_cautious": ("lion", {"lr": 1e-3, "cautious": True}),
    "adamw_8bit": ("adamw_8bit", {"lr": 1e-2}),
}


def _tensors(seed: int) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(s, generator=gen) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen) + 0.3 for s in SHAPES] for _ in range(STEPS)]
    return start, grads


def _one(name: str, kwargs: dict[str, Any], mesh: Any) -> float:
    from torch.distributed.tensor import Shard, distribute_tensor

    import swift_zoo

    start, grads = _tensors(0)
    plain = [torch.nn.Parameter(w.clone()) for w in start]
    sharded = [torch.nn.Parameter(distribute_tensor(w.clone(), mesh, [Shard(0)])) for w in start]
    opt_plain = swift_zoo.build_optimizer(name, plain, **kwargs)
    opt_sharded = swift_zoo.build_optimizer(name, sharded, **kwargs)
    for step in grads:
        for p, q, g in zip(plain, sharded, step):
            p.grad = g.clone()
            q.grad = distribute_tensor(g.clone(), mesh, [Shard(0)])
        opt_plain.step()
        opt_sharded.step()
    return max(float((p.detach() - q.detach().full_tensor()).abs().max()) for p, q in zip(plain, sharded))


def _control_local_norms(rank: int, world_size: int) -> float:
    """LAMB run naively on each rank's rows as plain tensors (norms of the shard, not the tensor): must differ."""
    import swift_zoo

    start, grads = _tensors(0)
    rows = [slice(rank * s[0] // world_size, (rank + 1) * s[0] // world_size) for s in SHAPES]
    plain = [torch.nn.Parameter(w.clone()) for w in start]
    local = [torch.nn.Parameter(w[r].clone()) for w, r in zip(start, rows)]
    opt_plain = swift_zoo.build_optimizer("lamb", plain, lr=1e-2)
    opt_local = swift_zoo.build_optimizer("lamb", local, lr=1e-2)
    for step in grads:
        for p, q, g, r in zip(plain, local, step, rows):
            p.grad, q.grad = g.clone(), g[r].clone()
        opt_plain.step()
        opt_local.step()
    return max(float((p.detach()[r] - q.detach()).abs().max()) for p, q, r in zip(plain, local, rows))


def run(rank: int, world_size: int, payload: Any) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (world_size,))
    results: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UntestedShardingWarning: this is the test
        for case_id, (name, kwargs) in CASES.items():
            try:
                results[case_id] = {"max_diff": _one(name, kwargs, mesh)}
            except Exception:
                results[case_id] = {"error": traceback.format_exc()}
    results[CONTROL] = {"max_diff": _control_local_norms(rank, world_size)}
    return results
