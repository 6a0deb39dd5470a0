"""ms-swift's model outputs, turned into the inputs a zoo loss declares, one function per family.

Layouts (read in ms-swift 4.6, ``swift/loss/embedding.py``, ``swift/loss/reranker.py`` and the
template collators ``Template._embedding_data_collator`` / ``_reranker_data_collator``):

* **token**: ``outputs.logits [B, T, V]`` and the collator's *unshifted* ``labels [B, T]``; the zoo
  loss shifts once (ms-swift's own loss rolls the labels by -1; the positions agree except the
  last, which ms-swift wraps around to a label that is always ``-100``).
* **embedding pairs**: ``outputs["last_hidden_state"]`` ``[2B, D]`` (``[2B, T, D]``: token 0 is
  used), sentence one of pair ``i`` in row ``2i``, sentence two in row ``2i + 1``; ``labels [B]``.
* **infonce**: per sample the rows anchor, positive, negatives (``n_i`` of them), all samples
  concatenated; ``labels`` holds ``1 + n_i`` entries per sample (the positive's non-zero label,
  then ``0`` per negative), so each non-zero label starts a sample.
* **rerankers**: ``outputs.logits [N, 1]``, one per (query, document); ``labels [N]``; for the
  listwise loss each ``1`` starts a query's group (its positive), the ``0``s after it are its
  negatives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from swift_zoo._errors import LossInputError

Inputs = tuple[dict[str, torch.Tensor], torch.Tensor | None]


def _get(outputs: Any, key: str) -> torch.Tensor:
    value = outputs.get(key) if isinstance(outputs, Mapping) else getattr(outputs, key, None)
    if value is None and not isinstance(outputs, Mapping) and isinstance(outputs, torch.Tensor):
        value = outputs
    if not isinstance(value, torch.Tensor):
        message = f"ms-swift outputs have no tensor {key!r}; got {type(outputs).__name__}"
        raise LossInputError(message)
    return value


def token_inputs(outputs: Any, labels: torch.Tensor) -> Inputs:
    return {"logits": _get(outputs, "logits")}, labels


def _sentence_rows(outputs: Any) -> torch.Tensor:
    rows = _get(outputs, "last_hidden_state")
    return rows[:, 0] if rows.dim() == 3 else rows


def embedding_pair_inputs(outputs: Any, labels: torch.Tensor) -> Inputs:
    rows = _sentence_rows(outputs)
    if rows.shape[0] != 2 * labels.numel():
        message = (
            f"a sentence-pair embedding loss needs two rows per label (anchor, positive, no negatives): got "
            f"{rows.shape[0]} rows for {labels.numel()} labels; use infonce for data with negative_messages"
        )
        raise LossInputError(message)
    return {"embeddings_a": rows[0::2], "embeddings_b": rows[1::2]}, labels.reshape(-1)


def _group_starts(labels: torch.Tensor) -> list[int]:
    return torch.nonzero(labels.reshape(-1) != 0).reshape(-1).tolist()


def _padded(rows: torch.Tensor, groups: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` gathered into ``[G, K, ...]`` by index lists of unequal length, and the ``[G, K]`` mask."""
    width = max(len(g) for g in groups)
    index = torch.zeros(len(groups), width, dtype=torch.long, device=rows.device)
    mask = torch.zeros(len(groups), width, dtype=torch.bool, device=rows.device)
    for i, group in enumerate(groups):
        index[i, :len(group)] = torch.tensor(group, dtype=torch.long, device=rows.device)
        mask[i, :len(group)] = True
    return rows[index], mask


def infonce_inputs(outputs: Any, labels: torch.Tensor) -> Inputs:
    rows = _sentence_rows(outputs)
    labels = labels.reshape(-1)
    starts = _group_starts(labels)
    if not starts or starts[0] != 0 or rows.shape[0] != labels.numel() + len(starts):
        message = (
            f"infonce expects ms-swift's embedding layout (per sample: anchor, positive, negatives; labels "
            f"1, 0...): got {rows.shape[0]} rows and labels {labels.tolist()}"
        )
        raise LossInputError(message)
    ends = [*starts[1:], labels.numel()]
    anchors = [start + i for i, start in enumerate(starts)]
    inputs = {"query_embeddings": rows[anchors], "positive_embeddings": rows[[a + 1 for a in anchors]]}
    negatives = [list(range(a + 2, a + 1 + end - start)) for a, start, end in zip(anchors, starts, ends)]
    if any(negatives):
        padded = [group or [0] for group in negatives]
        inputs["negative_embeddings"], mask = _padded(rows, padded)
        inputs["negative_mask"] = mask & torch.tensor([bool(g) for g in negatives], device=mask.device)[:, None]
    return inputs, None


def pointwise_reranker_inputs(outputs: Any, labels: torch.Tensor) -> Inputs:
    logits = _get(outputs, "logits")
    return {"logits": logits.reshape(logits.shape[0], -1)[:, 0]}, labels.reshape(-1)


def listwise_reranker_inputs(outputs: Any, labels: torch.Tensor) -> Inputs:
    logits = _get(outputs, "logits").reshape(-1)
    labels = labels.reshape(-1)
    starts = [i for i in _group_starts(labels) if labels[i] == 1]
    if not starts:
        return {"logits": logits[:0].reshape(0, 1)}, None
    ends = [*starts[1:], labels.numel()]
    grouped, mask = _padded(logits, [list(range(s, e)) for s, e in zip(starts, ends)])
    return {"logits": grouped, "candidate_mask": mask}, None


ADAPTERS: dict[str, Callable[[Any, torch.Tensor], Inputs]] = {
    "token": token_inputs,
    "embedding_pair": embedding_pair_inputs,
    "infonce": infonce_inputs,
    "pointwise_reranker": pointwise_reranker_inputs,
    "listwise_reranker": listwise_reranker_inputs,
}
