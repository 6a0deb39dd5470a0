"""Contrastive loss on the hard pairs of a batch only (sentence-transformers' OnlineContrastiveLoss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import flags, ms_swift
from swift_loss_zoo.embedding._pairs import check_distance, check_margin, example_pairs, pair_distance, pair_inputs
from swift_zoo import BaseLoss, LossExample, UnitLosses


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, values, torch.zeros_like(values)).sum() / mask.sum().clamp(min=1)


def _masked_extreme(values: torch.Tensor, mask: torch.Tensor, *, largest: bool) -> torch.Tensor:
    fill = torch.full_like(values, -torch.inf if largest else torch.inf)
    chosen = torch.where(mask, values, fill)
    return chosen.max() if largest else chosen.min()


class OnlineContrastiveLoss(BaseLoss):
    r"""Contrastive loss on the hard positive and hard negative pairs of the batch.

    With distances :math:`d_i` (see ``contrastive``), positives :math:`P = \{i: y_i = 1\}` and
    negatives :math:`Q = \{i: y_i = 0\}`, the hard pairs are (thresholds from detached distances,
    exactly as sentence-transformers selects them):

    * hard negatives: :math:`i \in Q` with :math:`d_i < \max_{P} d` if :math:`|P| > 1`, else
      :math:`d_i < \operatorname{mean}_{Q} d`;
    * hard positives: :math:`i \in P` with :math:`d_i > \min_{Q} d` if :math:`|Q| > 1`, else
      :math:`d_i > \operatorname{mean}_{P} d`.

    .. math::
        \ell_i = [i \text{ hard positive}]\, d_i^2 + [i \text{ hard negative}]\,\max(0,\ m - d_i)^2,
        \qquad L = \frac{1}{N}\sum_{i} \ell_i

    summed over **every** pair of the batch (pairs that are not hard contribute 0), :math:`N` =
    ``num_items_in_batch`` or the local number of pairs. **Normalisation differs from
    sentence-transformers / ms-swift**, which return the plain sum :math:`\sum_i \ell_i` (a scale
    that grows with the batch size): here the loss is that sum divided by the number of pairs,
    per the zoo's one normalisation rule; multiply the learning rate by the batch size to match.

    Which pairs are hard depends on the other pairs of the batch, so splitting a batch into
    micro-batches changes the loss (declared ``batch_dependent``).

    Sentence-BERT / sentence-transformers, arXiv:1908.10084; ms-swift ``online_contrastive``.
    Defaults (as both): ``margin=0.5``, ``distance="cosine"``.

    Inputs: ``model_outputs["embeddings_a"]``, ``model_outputs["embeddings_b"]`` ``[B, D]``,
    ``labels`` ``[B]`` (1 similar, 0 dissimilar).

    .. code-block:: yaml

        training_args:
          loss_type: online_contrastive
          loss_kwargs: {margin: 0.5}
    """

    name = "online_contrastive"
    reference = "arXiv:1908.10084"
    equivalents = (
        ms_swift(flags(task_type="embedding", loss_type="online_contrastive"),
                 differs="ms-swift returns the plain sum over the hard pairs; the zoo divides it by the number of "
                         "pairs (its one normalisation rule)"),
    )
    reduction_unit = "sample"
    batch_dependent = (
        "hard pairs are selected against thresholds computed over the whole batch (the largest positive "
        "and smallest negative distance), so which pairs count depends on the batch composition"
    )
    inputs = pair_inputs(label_dtype="mask", label_doc="1 = similar pair, 0 = dissimilar pair", label_domain="binary")

    def __init__(self, *, margin: float = 0.5, distance: str = "cosine") -> None:
        super().__init__()
        check_margin(self.name, margin)
        check_distance(self.name, distance)
        self.margin = margin
        self.distance = distance

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        distances = pair_distance(inputs["embeddings_a"], inputs["embeddings_b"], self.distance)
        labels = inputs["labels"]
        positive = labels == 1
        negative = labels == 0
        with torch.no_grad():
            d = distances.detach()
            n_positive, n_negative = int(positive.sum()), int(negative.sum())
            if n_positive > 1:
                negative_threshold = _masked_extreme(d, positive, largest=True)
            else:
                negative_threshold = _masked_mean(d, negative)
            if n_negative > 1:
                positive_threshold = _masked_extreme(d, negative, largest=False)
            else:
                positive_threshold = _masked_mean(d, positive)
            hard_negative = negative & (d < negative_threshold)
            hard_positive = positive & (d > positive_threshold)
        zero = torch.zeros_like(distances)
        losses = torch.where(hard_positive, distances.pow(2), zero)
        losses = losses + torch.where(hard_negative, F.relu(self.margin - distances).pow(2), zero)
        self.record_metrics(
            hard_positive_fraction=hard_positive.sum() / positive.sum().clamp(min=1),
            hard_negative_fraction=hard_negative.sum() / negative.sum().clamp(min=1),
        )
        return UnitLosses(losses)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return torch.tensor(inputs["labels"].shape[0], device=inputs["labels"].device)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return example_pairs(batch_size, generator, dtype, device, binary=True, hard=True)
