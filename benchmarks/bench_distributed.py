"""Every registered optimizer on 1, 2 and 4 FSDP2 ranks (gloo, CPU): step time, bytes moved, state per rank.

Model: the suite's LM shape (``swift_zoo.testing.TinyLM``: embedding, one pre-norm attention + MLP block, final
norm, head), widened (``FULL``); ``fully_shard`` on the block and the root. Every rank sees the same batch.

* **step time**: the median over ``steps`` of ``optimizer.step()`` alone (the backward pass is not timed),
  each rank timing the same step between two barriers and the slowest rank counting; against the same
  optimizer in one process without ``torch.distributed`` (the ``1`` column). The ranks share this machine's
  cores: on 2 cores, 4 ranks time-slice, so the 4-rank column measures contention as much as the method.
* **bytes**: what each rank sends in the optimizer's own collectives per step
  (``swift_zoo.optim.communication_ledger``; FSDP's own parameter all-gathers and gradient reduce-scatters are
  the same for every optimizer and not counted), the largest rank, against the **fp32 whole-matrix
  exchange** (``whole_matrix_bytes``): what owner compute costs if every matrix the method needs whole
  crosses once each way in float32 (each non-owner's rows to the owner, its rows of the result back). That is
  the least any scheme that computes the matrix in one place moves; Muon sends bfloat16 (half), GaLore and
  APOLLO send back only low-rank factors or scaling factors, Adafactor and Adam-mini all-reduce partial sums
  (``O(rows + cols)`` words) instead. Element-wise methods need no matrix whole: only the finite-gradient
  flag moves.
* **state**: optimizer-state bytes held by each rank (local shards of DTensors, whole owner-held tensors),
  the largest rank, against one process's; and the owner's extra memory (the most bytes of whole matrices one
  gather put on a rank).

Run:  ``python benchmarks/bench_distributed.py`` (writes ``benchmarks/results/distributed.md``)
Smoke run (seconds, asserts nothing about speed):  ``python benchmarks/bench_distributed.py --quick``
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import markdown_table, report_header

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"vocab": 1024, "dim": 256, "hidden": 1024, "steps": 6, "warmup": 2, "worlds": [2, 4], "batch": 4, "seq": 32}
QUICK = {"vocab": 64, "dim": 32, "hidden": 64, "steps": 2, "warmup": 1, "worlds": [2], "batch": 2, "seq": 8}
# settings closer to use than the suite's tiny examples (rank 16 of a 256-wide model)
KWARGS: dict[str, dict[str, Any]] = {
    "galore_adamw": {"rank": 16, "update_proj_gap": 4},
    "galore_adafactor": {"rank": 16, "update_proj_gap": 4},
    "q_galore_adamw": {"rank": 16, "update_proj_gap": 4},
    "apollo_adamw": {"rank": 16, "update_proj_gap": 4},
    "apollo_mini": {"update_proj_gap": 4},
    "adafactor": {"lr": 1e-3},
    "soap": {"precondition_frequency": 4},
}


def build_model(config: dict[str, Any]) -> Any:
    import torch

    from swift_zoo.testing._models import TinyLM

    torch.manual_seed(0)
    return TinyLM(vocab=config["vocab"], dim=config["dim"], hidden=config["hidden"])


def build_optimizer(name: str, model: Any) -> Any:
    import swift_zoo

    optimizer = swift_zoo.build_optimizer(name, model, **KWARGS.get(name.split(":")[-1], {}))
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()
    return optimizer


def state_bytes(optimizer: Any) -> int:
    """Bytes of this rank's optimizer state: a DTensor's local shard, any other tensor whole."""
    import torch

    from swift_zoo.optim import local_tensor

    seen, total = set(), 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                local = local_tensor(value)
                key = local.untyped_storage().data_ptr() if local.numel() else id(local)
                if key not in seen:
                    seen.add(key)
                    total += local.untyped_storage().nbytes()
    return total


def run_steps(name: str, model: Any, config: dict[str, Any], *, barrier: Any = None) -> dict[str, Any]:
    import torch

    from swift_zoo.optim import communication_ledger
    from swift_zoo.testing._models import tiny_lm_loss

    optimizer = build_optimizer(name, model)
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, config["vocab"], (config["batch"], config["seq"]), generator=generator)
    times, sent, owner = [], [], 0
    for step in range(config["warmup"] + config["steps"]):
        optimizer.zero_grad(set_to_none=True)
        tiny_lm_loss(model, tokens).backward()
        with communication_ledger() as ledger:
            if barrier is not None:
                barrier()
            start = time.perf_counter()
            optimizer.step()
            if barrier is not None:
                barrier()
            elapsed = time.perf_counter() - start
        if step >= config["warmup"]:
            times.append(elapsed)
            sent.append(ledger.total_bytes)
            owner = max(owner, ledger.owner_peak_bytes)
    return {"time": times, "sent": sent, "state": state_bytes(optimizer), "owner": owner,
            "reference": whole_matrix_bytes(optimizer)}


def whole_matrix_bytes(optimizer: Any) -> float:
    """Bytes this rank sends per step if every matrix the method needs whole crosses once each way in float32:
    the parameters it computes on an owner; for methods that need only sums (Adafactor, Adam-mini) every
    matrix, as owner compute would need. Plain balanced owners (``MatrixOwners``) as the optimizer uses."""
    import torch.distributed as dist

    from swift_zoo.optim import MatrixOwners, row_range

    if not dist.is_initialized() or getattr(optimizer, "elementwise", False):
        return 0.0
    world, me = dist.get_world_size(), dist.get_rank()
    pairs = [(p, g) for g in optimizer.param_groups for p in g["params"]]
    whole = [p for p, g in pairs if optimizer._owner_computed(p, g)] or [p for p, _ in pairs if p.dim() >= 2]
    owners = MatrixOwners()
    owners.assign(whole)
    total = 0.0
    for param in whole:
        start, stop = row_range(param.shape[0], world, me)
        mine = (stop - start) * math.prod(param.shape[1:])
        # the owner sends every other rank its rows back; any other rank sends its rows to the owner
        total += 4 * ((param.numel() - mine) if owners.owner_of(param) == me else mine)
    return total


# ----------------------------------------------------------------------------- workers
def rank_worker(rank: int, world_size: int, payload: dict[str, Any]) -> dict[str, Any]:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    config, results = payload["config"], {}
    mesh = init_device_mesh("cpu", (world_size,))
    for name in payload["names"]:
        model = build_model(config)
        fully_shard(model.block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        results[name] = run_steps(name, model, config, barrier=dist.barrier)
    return results


def one_process(names: list[str], config: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return {name: run_steps(name, build_model(config), config) for name in names}


# ----------------------------------------------------------------------------- report
def report(names: list[str], config: dict[str, Any], single: dict[str, Any], ranked: dict[int, list[dict]]) -> str:
    def ms(values: list[float]) -> float:
        return 1000 * statistics.median(values)

    def kib(nbytes: float) -> str:
        return f"{nbytes / 1024:,.1f}" if nbytes >= 1024 or not nbytes else f"{nbytes / 1024:.3f}"

    header = ["optimizer", "1 process ms"]
    for world in config["worlds"]:
        header += [f"{world} ranks ms (x)", f"{world} ranks KiB sent/step (fp32 whole)", f"{world} ranks state KiB/rank (x)",
                   f"{world} ranks owner extra KiB"]
    rows = []
    for name in names:
        base = single[name]
        row = [f"`{name.split(':')[-1]}`", f"{ms(base['time']):.2f}"]
        for world in config["worlds"]:
            per_rank = [ranks[name] for ranks in ranked[world]]
            step = max(ms(r["time"]) for r in per_rank)
            sent = max(statistics.median(r["sent"]) for r in per_rank)
            reference = max(r["reference"] for r in per_rank)
            state = max(r["state"] for r in per_rank)
            owner = max(r["owner"] for r in per_rank)
            row += [f"{step:.2f} ({step / ms(base['time']):.1f})", f"{kib(sent)} ({kib(reference)})",
                    f"{kib(state)} ({state / base['state']:.2f})" if base["state"] else kib(state), kib(owner)]
        rows.append(row)
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 2 ranks, a smoke run")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    import torch

    import swift_zoo
    from swift_zoo.testing._spawn import gloo_unavailable_reason, run_on_ranks

    reason = gloo_unavailable_reason()
    if reason is not None:
        print(f"bench_distributed: skipped, {reason}")
        return
    names = sorted(e.qualified_name for e in swift_zoo.list_optimizers()
                   if e.spec.distributed.fsdp2.supported and e.distribution == "swift-optim-zoo")
    load_before = os.getloadavg()
    single = one_process(names, config)
    ranked = {world: run_on_ranks("bench_distributed:rank_worker", {"config": config, "names": names},
                                  world_size=world, timeout=3600) for world in config["worlds"]}
    load_after = os.getloadavg()
    params = sum(p.numel() for p in build_model(config).parameters())
    text = "\n\n".join([
        report_header("Optimizers under FSDP2 (gloo, CPU)"),
        f"Model: TinyLM(vocab={config['vocab']}, dim={config['dim']}, hidden={config['hidden']}), {params:,} "
        f"parameters, `fully_shard` on the block and the root; batch {config['batch']} x {config['seq']} tokens; "
        f"median of {config['steps']} steps after {config['warmup']} warm-up steps; torch {torch.__version__}. "
        f"Load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after: other processes shared the "
        "cores, so times are indicative; bytes and state are exact.",
        "Columns per world size: `optimizer.step()` time (slowest rank; x = ratio to one process); KiB the "
        "largest rank sends in the optimizer's own collectives per step (in brackets: the fp32 whole-matrix "
        "exchange, every matrix the method needs whole crossing once each way in float32); "
        "optimizer state held by the largest rank (x = ratio to one process's whole state); the most KiB of "
        "whole matrices one gather put on a rank (the owner's extra memory).",
        report(names, config, single, ranked),
    ])
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "distributed.md").write_text("# Distributed benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    main()
