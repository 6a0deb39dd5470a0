"""Regression of the cosine similarity of a sentence pair onto a gold score (STS)."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import flags, ms_swift
from swift_loss_zoo.embedding._pairs import example_pairs, pair_cosine, pair_inputs
from swift_zoo import BaseLoss, LossExample, UnitLosses
from swift_zoo.ops import upcast


class CosineSimilarityLoss(BaseLoss):
    r"""Squared error between the cosine similarity of a pair and its gold score.

    For pair :math:`i` with embeddings :math:`a_i, b_i` and gold score :math:`y_i` (in
    :math:`[-1, 1]`, or :math:`[0, 1]` for scores rescaled that way)

    .. math::
        \ell_i = \big(\cos(a_i, b_i) - y_i\big)^2, \qquad
        L = \frac{1}{N}\sum_i \ell_i

    (:math:`N` = ``num_items_in_batch`` or the local number of pairs): sentence-transformers'
    ``CosineSimilarityLoss`` (an MSE with the identity score transformation), ms-swift's
    ``cosine_similarity``. Sentence-BERT, arXiv:1908.10084. No hyperparameters.

    Inputs: ``model_outputs["embeddings_a"]``, ``model_outputs["embeddings_b"]`` ``[B, D]``
    (pooled sentence embeddings; need not be normalised), ``labels`` ``[B]`` float scores.

    .. code-block:: yaml

        training_args:
          loss_type: cosine_similarity
    """

    name = "cosine_similarity"
    reference = "arXiv:1908.10084"
    equivalents = (
        ms_swift(flags(task_type="embedding", loss_type="cosine_similarity"),
                 settings="rows 2i and 2i+1 of last_hidden_state are embeddings_a[i] and embeddings_b[i]"),
    )
    reduction_unit = "sample"
    inputs = pair_inputs(label_dtype="float", label_doc="gold similarity score in [-1, 1] (or [0, 1])")

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        cosine = pair_cosine(inputs["embeddings_a"], inputs["embeddings_b"])
        target = upcast(inputs["labels"]).to(cosine.dtype)
        self.record_metrics(cosine_mean=cosine, cosine_abs_error=(cosine - target).abs())
        return UnitLosses((cosine - target).pow(2))

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return torch.tensor(inputs["labels"].shape[0], device=inputs["labels"].device)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return example_pairs(batch_size, generator, dtype, device, binary=False)
