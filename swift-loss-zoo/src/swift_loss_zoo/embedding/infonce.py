"""InfoNCE with in-batch and hard negatives for embedding models."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import flags, ms_swift
from swift_zoo import BaseLoss, ConfigError, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import upcast

SIMILARITIES = ("cosine", "dot")
_BATCH_REASON = (
    "in-batch negatives: each query is contrasted with the positives and hard negatives of every other "
    "row of the same batch, so the loss depends on which rows share a (micro-)batch"
)


def _row_ids(positives: torch.Tensor, negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids such that two embeddings get the same id exactly when they are equal in every coordinate.

    ``positives [B, D]`` -> ``[B]``, ``negatives [B, K, D]`` -> ``[B, K]``; one sort of the rows
    (``torch.unique``) instead of a ``[B, B*K, D]`` comparison.
    """
    batch, count, dim = negatives.shape
    dtype = torch.promote_types(positives.dtype, negatives.dtype)
    rows = torch.cat([positives.detach().to(dtype), negatives.detach().to(dtype).reshape(-1, dim)])
    _, ids = torch.unique(rows, dim=0, return_inverse=True)
    return ids[:batch], ids[batch:].reshape(batch, count)


class InfoNCELoss(BaseLoss):
    r"""InfoNCE: pick each query's positive among in-batch and hard negatives.

    With query :math:`q_i`, positive :math:`p_i`, hard negatives :math:`n_{j,k}`
    (``negative_embeddings[j, k]``), similarity :math:`s(x, y)` (cosine by default) and temperature
    :math:`\tau`, the candidates of query :math:`i` are (``use_batch=True``) every positive
    :math:`p_j` and every hard negative :math:`n_{j,k}` of the batch, and

    .. math::
        \ell_i = -\log \frac{e^{s(q_i, p_i)/\tau}}
                 {\sum_{c \in C_i} e^{s(q_i, c)/\tau}}, \qquad
        L = \frac{1}{N}\sum_i \ell_i

    (:math:`N` = ``num_items_in_batch`` or the local number of queries). :math:`C_i` contains
    :math:`p_i` and excludes whatever is not a true negative of query :math:`i`:

    * the positive :math:`p_j` of another row with the same ``group_ids`` value (the same query,
      or queries known to share positives);
    * any candidate exactly equal to :math:`p_i` (a duplicated positive, e.g. two rows with the
      same document, or a hard negative resampled from the positive -- ms-swift PR #10068);
    * hard negatives whose ``negative_mask`` is 0 (padding, for rows with fewer negatives).

    With ``use_batch=False`` the candidates are only the row's own :math:`p_i` and
    :math:`n_{i,k}` (ms-swift ``INFONCE_USE_BATCH=False``) and the loss no longer depends on the
    batch composition. van den Oord et al., arXiv:1807.03748 (InfoNCE); in-batch negatives as in
    DPR, arXiv:2004.04906; ms-swift ``infonce``.

    Defaults: ``temperature=0.1`` (ms-swift's ``INFONCE_TEMPERATURE`` default since PR #6761; it
    was 0.01), ``use_batch=True``, ``similarity="cosine"`` (``"dot"`` for embeddings that the
    model already normalises, as ms-swift assumes). Unlike ms-swift, other ranks' embeddings are
    not gathered here: gather them into the batch before calling the loss if you want them.

    Inputs: ``query_embeddings`` ``[B, D]`` and ``positive_embeddings`` ``[B, D]``
    (differentiable), optional ``negative_embeddings`` ``[B, K, D]`` (differentiable),
    ``negative_mask`` ``[B, K]`` (1 = real negative) and ``group_ids`` ``[B]`` (int).

    .. code-block:: yaml

        training_args:
          loss_type: infonce
          loss_kwargs: {temperature: 0.05, use_batch: true}
    """

    name = "infonce"
    aliases = ("info_nce",)
    reference = "arXiv:1807.03748"
    equivalents = (
        ms_swift(flags(task_type="embedding", loss_type="infonce"), {"similarity": "dot"},
                 settings="INFONCE_TEMPERATURE=0.1, INFONCE_USE_BATCH=True; embeddings normalised by the model",
                 differs="ms-swift gathers other ranks' embeddings into the candidates and can count a resampled "
                         "copy of the positive as a negative (PR #10068); the zoo excludes any candidate equal to "
                         "the positive and uses the local batch"),
    )
    reduction_unit = "query"
    batch_dependent = _BATCH_REASON
    inputs = (
        TensorInput("query_embeddings", ("B", "D"), differentiable=True, doc="query (anchor) embeddings"),
        TensorInput("positive_embeddings", ("B", "D"), differentiable=True, doc="the positive document of each query"),
        TensorInput("negative_embeddings", ("B", "K", "D"), differentiable=True, optional=True,
                    masked_by="negative_mask", doc="hard negatives of each query"),
        TensorInput("negative_mask", ("B", "K"), dtype="mask", optional=True, role="mask",
                    doc="1 = real hard negative, 0 = padding"),
        TensorInput("group_ids", ("B",), dtype="int", optional=True,
                    doc="rows with equal ids never treat each other's positives as negatives"),
    )

    def __init__(self, *, temperature: float = 0.1, use_batch: bool = True, similarity: str = "cosine") -> None:
        super().__init__()
        if not temperature > 0.0:
            message = f"infonce: temperature must be a float > 0, got {temperature!r}"
            raise ConfigError(message, key="temperature", expected="float > 0", found=temperature)
        if similarity not in SIMILARITIES:
            message = f"infonce: similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}"
            raise ConfigError(message, key="similarity", expected=f"one of {SIMILARITIES}", found=similarity)
        self.temperature = temperature
        self.use_batch = use_batch
        self.similarity = similarity
        self.batch_dependent = _BATCH_REASON if use_batch else None

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = upcast(x)
        return F.normalize(x, dim=-1) if self.similarity == "cosine" else x

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        raw_queries, raw_positives = inputs["query_embeddings"], inputs["positive_embeddings"]
        raw_negatives = inputs.get("negative_embeddings")
        batch, dim = raw_queries.shape
        queries, positives = self._prepare(raw_queries), self._prepare(raw_positives)
        rows = torch.arange(batch, device=queries.device)
        if raw_negatives is None:
            raw_negatives = raw_positives.new_zeros(batch, 0, dim)
        count = raw_negatives.shape[1]
        negative_keep = torch.ones(batch, count, dtype=torch.bool, device=queries.device)
        if inputs.get("negative_mask") is not None:
            negative_keep = inputs["negative_mask"].to(device=queries.device) != 0
            # padded negatives are replaced before any arithmetic: whatever they hold has no influence
            raw_negatives = torch.where(negative_keep[..., None], raw_negatives, torch.zeros_like(raw_negatives))
        negatives = self._prepare(raw_negatives)
        with torch.no_grad():
            positive_ids, negative_ids = _row_ids(raw_positives, raw_negatives)
            # same_as_positive[i, j, k]: hard negative (j, k) equals the positive of row i
            same_as_positive = positive_ids[:, None, None] == negative_ids[None, :, :]
        if self.use_batch:
            # candidates: the B positives, then the B*K hard negatives (row-major)
            similarities = torch.cat(
                [queries @ positives.T, queries @ negatives.reshape(-1, dim).T], dim=1
            ) / self.temperature
            with torch.no_grad():
                positive_keep = positive_ids[:, None] != positive_ids[None, :]
                if inputs.get("group_ids") is not None:
                    groups = inputs["group_ids"]
                    positive_keep &= groups[:, None] != groups[None, :]
                positive_keep[rows, rows] = True
                keep_negatives = negative_keep.reshape(1, -1) & ~same_as_positive.reshape(batch, -1)
                keep = torch.cat([positive_keep, keep_negatives], dim=1)
            target = rows
        else:
            own = torch.einsum("bd,bkd->bk", queries, negatives)
            similarities = torch.cat([(queries * positives).sum(-1, keepdim=True), own], dim=1) / self.temperature
            with torch.no_grad():
                keep_own = negative_keep & ~same_as_positive[rows, rows]
                keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=keep_own.device), keep_own], dim=1)
            target = torch.zeros_like(rows)
        masked = similarities.masked_fill(~keep, -torch.inf)
        positive_logit = similarities[rows, target]
        losses = torch.logsumexp(masked, dim=1) - positive_logit
        with torch.no_grad():
            negative_only = keep.clone()
            negative_only[rows, target] = False
            scale = self.temperature
            self.record_metrics(
                accuracy=(masked.argmax(dim=1) == target).float().mean(),
                positive_similarity=positive_logit * scale,
                negative_similarity=(similarities * negative_only).sum() * scale / negative_only.sum().clamp(min=1),
            )
        return UnitLosses(losses)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        queries = inputs["query_embeddings"]
        return torch.tensor(queries.shape[0], device=queries.device)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        dim, count = 8, 3
        queries = torch.randn(batch_size, dim, generator=generator, dtype=torch.float32)
        positives = queries + 0.8 * torch.randn(batch_size, dim, generator=generator, dtype=torch.float32)
        negatives = torch.randn(batch_size, count, dim, generator=generator, dtype=torch.float32)
        negative_mask = torch.ones(batch_size, count, dtype=torch.bool)
        negative_mask[1::2, -1] = False  # every other row has one negative fewer
        outputs = {
            "query_embeddings": queries.to(device, dtype),
            "positive_embeddings": positives.to(device, dtype),
            "negative_embeddings": negatives.to(device, dtype),
            "negative_mask": negative_mask.to(device),
        }
        return LossExample(outputs)
