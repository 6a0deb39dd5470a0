"""Margin contrastive loss on sentence pairs (Hadsell, Chopra & LeCun 2006)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import flags, ms_swift
from swift_loss_zoo.embedding._pairs import check_distance, check_margin, example_pairs, pair_distance, pair_inputs
from swift_zoo import BaseLoss, LossExample, UnitLosses
from swift_zoo.ops import upcast


class ContrastiveLoss(BaseLoss):
    r"""Pull similar pairs together, push dissimilar ones beyond a margin.

    With the distance :math:`d_i = d(a_i, b_i)` (``cosine``: :math:`1-\cos(a_i, b_i)`;
    ``euclidean``: :math:`\lVert a_i - b_i\rVert_2`; ``manhattan``: :math:`\lVert a_i - b_i\rVert_1`),
    label :math:`y_i = 1` for a similar pair and :math:`0` for a dissimilar one, and margin :math:`m`

    .. math::
        \ell_i = \tfrac12\Big(y_i\,d_i^2 + (1-y_i)\,\max(0,\ m - d_i)^2\Big), \qquad
        L = \frac{1}{N}\sum_i \ell_i

    (:math:`N` = ``num_items_in_batch`` or the local number of pairs). Hadsell, Chopra & LeCun,
    "Dimensionality Reduction by Learning an Invariant Mapping", CVPR 2006 (no arXiv id; the
    reference given is Sentence-BERT, arXiv:1908.10084, whose library defines the defaults);
    sentence-transformers' ``ContrastiveLoss`` and ms-swift's ``contrastive``.

    Defaults (as sentence-transformers and ms-swift): ``margin=0.5``, ``distance="cosine"``.
    The euclidean and manhattan distances add ``1e-6`` to the difference, as
    ``torch.nn.functional.pairwise_distance`` does, so identical embeddings stay differentiable.

    Inputs: ``model_outputs["embeddings_a"]``, ``model_outputs["embeddings_b"]`` ``[B, D]``,
    ``labels`` ``[B]`` (1 similar, 0 dissimilar; bool, int or float).

    .. code-block:: yaml

        training_args:
          loss_type: contrastive
          loss_kwargs: {margin: 0.5, distance: cosine}
    """

    name = "contrastive"
    reference = "arXiv:1908.10084"
    equivalents = (
        ms_swift(flags(task_type="embedding", loss_type="contrastive"),
                 settings="rows 2i and 2i+1 of last_hidden_state are embeddings_a[i] and embeddings_b[i]"),
    )
    reduction_unit = "sample"
    inputs = pair_inputs(label_dtype="mask", label_doc="1 = similar pair, 0 = dissimilar pair", label_domain="binary")

    def __init__(self, *, margin: float = 0.5, distance: str = "cosine") -> None:
        super().__init__()
        check_margin(self.name, margin)
        check_distance(self.name, distance)
        self.margin = margin
        self.distance = distance

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        distances = pair_distance(inputs["embeddings_a"], inputs["embeddings_b"], self.distance)
        similar = upcast(inputs["labels"].to(distances.dtype))
        losses = 0.5 * (similar * distances.pow(2) + (1.0 - similar) * F.relu(self.margin - distances).pow(2))
        self.record_metrics(distance_mean=distances)
        return UnitLosses(losses)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return torch.tensor(inputs["labels"].shape[0], device=inputs["labels"].device)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return example_pairs(batch_size, generator, dtype, device, binary=True)
