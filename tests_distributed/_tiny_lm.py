"""A tiny LM-shaped model and seeded batches with uneven lengths, shared by the parent and every rank.

The model has what parameter roles are made of: an embedding (``embed_tokens``), norms, hidden
``nn.Linear`` matrices (with and without bias) and an output head named ``lm_head``, so role-based
param groups (no decay for norms/biases, low-rank methods on hidden matrices only) really apply.
It is position-wise (no attention): enough for gradients through every parameter, cheap on CPU.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

VOCAB = 13
HIDDEN = 12
SEQ_LEN = 9
IGNORE_INDEX = -100


class TinyLM(nn.Module):
    """``tokens [B, T] -> {"logits": [B, T, V]}``: embedding, norm, MLP with a residual, norm, ``lm_head``."""

    def __init__(self, vocab: int = VOCAB, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.input_norm = nn.LayerNorm(hidden)
        self.up_proj = nn.Linear(hidden, 2 * hidden)
        self.down_proj = nn.Linear(2 * hidden, hidden, bias=False)
        self.final_norm = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embed_tokens(input_ids)
        h = h + self.down_proj(torch.tanh(self.up_proj(self.input_norm(h))))
        return {"logits": self.lm_head(self.final_norm(h))}


class Block(nn.Module):
    """RMSNorm, a causal attention of ``num_heads`` heads (query/key rows in head blocks: Adam-mini's blocks and
    QK-clip's heads; the normed input split by heads serves as the values), a gated MLP and a stack of 3 small
    experts (``experts``: role ``expert_stack``). Row counts chosen for sharding: ``gate`` has 3 rows and
    ``experts`` 3 slices (fewer than 4 ranks: an empty shard), ``q_proj``/``k_proj`` 12 rows in head blocks of 4
    (on 4 ranks, 3 rows each: heads straddle shards), ``up_proj`` 18 rows.

    ``qk_logits_from_projections``: its logits are ``q_proj(x)`` against ``k_proj(x)`` per head, scaled by
    ``head_dim ** -0.5``, causal -- what MuonClip's QK-clip records (:mod:`swift_optim_zoo.muon.qk_clip`)."""

    qk_logits_from_projections = True

    def __init__(self, hidden: int = HIDDEN, num_heads: int = 3) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.RMSNorm(hidden)
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.gate = nn.Linear(hidden, 3)
        self.up_proj = nn.Linear(hidden, 3 * hidden // 2)
        self.down_proj = nn.Linear(3 * hidden // 2, hidden, bias=False)
        self.experts = nn.Parameter(torch.randn(3, hidden, hidden // 3) / hidden**0.5)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.norm(h)
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (self.q_proj(x), self.k_proj(x), x))
        scores = q @ k.mT / q.shape[-1] ** 0.5  # [B, heads, T, T]
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
        h = h + (scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v).transpose(1, 2).flatten(-2)
        mix = torch.sigmoid(self.gate(x)).mean(-1, keepdim=True)
        experts = torch.einsum("bth,ehk->btk", x, self.experts).repeat(1, 1, 3)
        return h + self.down_proj(torch.tanh(self.up_proj(x))) * mix + experts


class BlockLM(nn.Module):
    """The model the FSDP2 tests shard: an embedding, two :class:`Block` s, a final RMSNorm and ``lm_head``;
    each block and the root get ``fully_shard``."""

    def __init__(self, vocab: int = VOCAB, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.blocks = nn.ModuleList([Block(hidden), Block(hidden)])
        self.final_norm = nn.RMSNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embed_tokens(input_ids)
        for block in self.blocks:
            h = block(h)
        return {"logits": self.lm_head(self.final_norm(h))}


def build_block_lm(*, seed: int = 0) -> BlockLM:
    """The same initial weights in every process that asks with the same seed (float32)."""
    torch.manual_seed(seed)
    model = BlockLM()
    with torch.no_grad():  # norms away from 1, so decay and updates on them are visible
        for module in model.modules():
            if isinstance(module, nn.RMSNorm):
                module.weight.uniform_(0.5, 1.5)
    return model


def build_model(*, seed: int = 0, dtype: torch.dtype = torch.float32) -> TinyLM:
    """The same initial weights in every process that asks with the same seed."""
    torch.manual_seed(seed)
    return TinyLM().to(dtype)


class LmBatch(NamedTuple):
    input_ids: torch.Tensor  # [B, T], padding = 0
    labels: torch.Tensor  # [B, T], prompt and padding = -100

    def rows(self, start: int, stop: int) -> LmBatch:
        return LmBatch(self.input_ids[start:stop], self.labels[start:stop])


def lm_batch(num_rows: int, *, seed: int, seq_len: int = SEQ_LEN) -> LmBatch:
    """Rows of different lengths (3..seq_len) with masked prompts of different lengths (0..2)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, (num_rows, seq_len), generator=generator)
    labels = input_ids.clone()
    lengths = torch.randint(3, seq_len + 1, (num_rows,), generator=generator)
    prompts = torch.randint(0, 3, (num_rows,), generator=generator)
    positions = torch.arange(seq_len)
    for row in range(num_rows):
        input_ids[row, positions >= lengths[row]] = 0
        labels[row, positions >= lengths[row]] = IGNORE_INDEX
        labels[row, positions < prompts[row]] = IGNORE_INDEX
    return LmBatch(input_ids, labels)


class PreferenceBatch(NamedTuple):
    chosen: LmBatch
    rejected: LmBatch
    reference_chosen_logps: torch.Tensor  # [B], float64
    reference_rejected_logps: torch.Tensor  # [B], float64

    def rows(self, start: int, stop: int) -> PreferenceBatch:
        return PreferenceBatch(self.chosen.rows(start, stop), self.rejected.rows(start, stop),
                               self.reference_chosen_logps[start:stop], self.reference_rejected_logps[start:stop])


def preference_batch(num_pairs: int, *, seed: int) -> PreferenceBatch:
    """Chosen/rejected completions of different lengths and frozen reference log-probs near theirs."""
    chosen = lm_batch(num_pairs, seed=seed)
    rejected = lm_batch(num_pairs, seed=seed + 1)
    generator = torch.Generator().manual_seed(seed + 2)
    scored_c = (chosen.labels[:, 1:] != IGNORE_INDEX).sum(-1).to(torch.float64)
    scored_r = (rejected.labels[:, 1:] != IGNORE_INDEX).sum(-1).to(torch.float64)
    ref_c = -2.6 * scored_c + 0.5 * torch.randn(num_pairs, generator=generator, dtype=torch.float64)
    ref_r = -2.6 * scored_r + 0.5 * torch.randn(num_pairs, generator=generator, dtype=torch.float64)
    return PreferenceBatch(chosen, rejected, ref_c, ref_r)


def named_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter's gradient (zeros where none), detached copies."""
    return {
        name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in model.named_parameters()
    }


def named_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


class ContrastiveBatch(NamedTuple):
    queries: torch.Tensor  # [B, T] token ids, padding = 0
    positives: torch.Tensor  # [B, T] token ids of each query's positive document

    def rows(self, start: int, stop: int) -> ContrastiveBatch:
        return ContrastiveBatch(self.queries[start:stop], self.positives[start:stop])


def contrastive_batch(num_rows: int, *, seed: int) -> ContrastiveBatch:
    """(query, positive) token sequences of different lengths."""
    return ContrastiveBatch(lm_batch(num_rows, seed=seed).input_ids, lm_batch(num_rows, seed=seed + 1).input_ids)


def mean_pooled(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """``[B, V]`` embeddings: the model's logits averaged over non-padding positions."""
    logits = model(input_ids)["logits"]
    keep = (input_ids != 0).unsqueeze(-1).to(logits.dtype)
    return (logits * keep).sum(1) / keep.sum(1)
