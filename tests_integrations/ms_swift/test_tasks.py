"""Embedding and reranker losses through ``swift sft --task_type embedding|reranker``, against ms-swift's own.

ms-swift builds the embedding / reranker model from the tiny Llama (last-token pooling, L2-normalised
embeddings; a one-logit head for the reranker) and feeds a loss its own output layout
(``swift_zoo.integrations.ms_swift._outputs``); the zoo loss must give the same loss and grad_norm at
every step.
"""

from __future__ import annotations

import pytest

CASES = [
    ("embedding", "embedding", "infonce"),
    ("embedding", "embedding_pairs", "cosine_similarity"),
    ("embedding", "embedding_pairs", "contrastive"),
    ("reranker", "reranker", "pointwise_reranker"),
    ("reranker", "reranker", "listwise_reranker"),
]


@pytest.mark.parametrize(("task", "data_name", "loss"), CASES, ids=[c[2] for c in CASES])
def test_zoo_loss_equals_builtin(tiny_run, same_steps, task, data_name, loss):
    builtin = tiny_run("sft", "--task_type", task, "--loss_type", loss, data_name=data_name)
    zoo = tiny_run("sft", "--task_type", task, "--loss_type", f"zoo:{loss}", data_name=data_name)
    same_steps(zoo, builtin, rel=5e-6)
