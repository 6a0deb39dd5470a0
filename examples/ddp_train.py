"""Data-parallel training with a swift zoo loss and optimizer (torch DDP; gloo on CPU, nccl on GPUs).

    torchrun --nproc_per_node 2 examples/ddp_train.py
    torchrun --nproc_per_node 2 examples/ddp_train.py --optimizer galore_adamw --steps 30
    python examples/ddp_train.py                       # one process, no torch.distributed

Each rank trains a tiny causal LM on its own shard of a synthetic task (continue a counting
sequence), shards of *different* sizes with rows of different lengths. The one rule that makes
the step equal to one process on the whole global batch (docs/distributed.md)::

    local  = loss.count_units(outputs, labels)            # units on this rank (tokens, pairs, ...)
    global = all_reduce(local, SUM)                       # units on all ranks = num_items_in_batch
    loss   = loss_fn(outputs, labels, num_items_in_batch=global)
    (loss * world_size).backward()                        # DDP averages gradients: undo the 1/world_size

Every rank prints its loss contribution; rank 0 prints the global loss (the sum of the
contributions) and every rank checks at the end that its parameters equal rank 0's.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import swift_zoo

VOCAB, HIDDEN, SEQ_LEN = 16, 32, 12
IGNORE_INDEX = -100


class TinyCausalLM(nn.Module):
    """Embedding, norm, MLP with a residual, norm, ``lm_head``: the roles zoo optimizers group by."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN)
        self.up_proj = nn.Linear(HIDDEN, 2 * HIDDEN)
        self.down_proj = nn.Linear(2 * HIDDEN, HIDDEN)
        self.final_norm = nn.LayerNorm(HIDDEN)
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embed_tokens(input_ids)
        h = h + self.down_proj(torch.relu(self.up_proj(self.norm(h))))
        return {"logits": self.lm_head(self.final_norm(h))}


def shard(step: int, rank: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows for ``step``: ``2 + rank`` rows, lengths 4..SEQ_LEN, padding labelled -100.

    The task: ``x[t+1] = (x[t] + 1) % VOCAB``, from a random start (learnable by a position-wise model).
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + rank)
    rows = 2 + rank
    starts = torch.randint(0, VOCAB, (rows, 1), generator=generator)
    input_ids = (starts + torch.arange(SEQ_LEN)) % VOCAB
    lengths = torch.randint(4, SEQ_LEN + 1, (rows,), generator=generator)
    padding = torch.arange(SEQ_LEN) >= lengths[:, None]
    labels = input_ids.masked_fill(padding, IGNORE_INDEX)
    return input_ids.masked_fill(padding, 0), labels


def say(message: str) -> None:
    """One write per line, so the lines of concurrent ranks do not interleave."""
    print(message + "\n", end="", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", default="cross_entropy", help="a token-level zoo loss (default: cross_entropy)")
    parser.add_argument("--optimizer", default="adamw", help="any registered zoo optimizer (default: adamw)")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    distributed = "RANK" in os.environ  # set by torchrun
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = TinyCausalLM().to(device)
    wrapped = DistributedDataParallel(model) if distributed else model
    loss_fn = swift_zoo.build_loss(args.loss)
    # the optimizer sees the unwrapped model: role-based groups, names without "module."
    optimizer = swift_zoo.build_optimizer(args.optimizer, model, lr=args.lr)
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()  # schedule-free optimizers step only in train mode

    for step in range(args.steps):
        input_ids, labels = (t.to(device) for t in shard(step, rank, seed=args.seed))
        outputs = wrapped(input_ids)
        local_units = loss_fn.count_units(outputs, labels)
        global_units = local_units.clone()
        if distributed:
            dist.all_reduce(global_units, op=dist.ReduceOp.SUM)
        loss = loss_fn(outputs, labels, num_items_in_batch=global_units)  # this rank's share of the global loss
        optimizer.zero_grad(set_to_none=True)
        (loss * world_size).backward()  # DDP divides the summed gradients by world_size
        optimizer.step()

        global_loss = loss.detach().clone()
        if distributed:
            dist.all_reduce(global_loss, op=dist.ReduceOp.SUM)
        say(f"step {step:3d} rank {rank}: {int(local_units):3d} of {int(global_units):3d} tokens, "
            f"loss share {loss.item():.4f}")
        if rank == 0:
            say(f"step {step:3d} global loss {global_loss.item():.4f}")

    if callable(getattr(optimizer, "eval", None)):
        optimizer.eval()  # schedule-free: evaluate and save the averaged weights
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    reference = flat.clone()
    if distributed:
        dist.broadcast(reference, src=0)
    max_diff = float((flat - reference).abs().max())
    identical = torch.equal(flat, reference)
    say(f"rank {rank}: parameters identical to rank 0: {identical} (max |diff| {max_diff:.3g})")
    if distributed:
        dist.barrier()  # every rank done with the broadcast before any tears the group down (gloo aborts otherwise)
        dist.destroy_process_group()
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
