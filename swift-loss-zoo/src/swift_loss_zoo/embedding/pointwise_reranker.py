"""Pointwise reranker: binary cross-entropy on one relevance logit per (query, document)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import flags, ms_swift
from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import upcast


class PointwiseRerankerLoss(BaseLoss):
    r"""Binary cross-entropy of a cross-encoder's relevance logit.

    For the pair :math:`i` with logit :math:`z_i` and relevance :math:`y_i \in \{0, 1\}` (soft
    targets in :math:`[0, 1]` work too)

    .. math::
        \ell_i = -\big(y_i \log\sigma(z_i) + (1 - y_i)\log\sigma(-z_i)\big)
               = \operatorname{softplus}(z_i) - y_i z_i, \qquad
        L = \frac{1}{N}\sum_i \ell_i

    (:math:`N` = ``num_items_in_batch`` or the local number of pairs): ms-swift's
    ``pointwise_reranker`` (v3 ``reranker``), a ``BCEWithLogits`` on the squeezed ``[N, 1]``
    logits. monoBERT passage reranking, arXiv:1901.04085. No hyperparameters.

    Inputs: ``model_outputs["logits"]`` ``[B]`` (squeeze a ``[B, 1]`` head output),
    ``labels`` ``[B]`` (1 relevant, 0 not).

    .. code-block:: yaml

        training_args:
          loss_type: pointwise_reranker
    """

    name = "pointwise_reranker"
    aliases = ("reranker",)
    reference = "arXiv:1901.04085"
    equivalents = (ms_swift(flags(task_type="reranker", loss_type="pointwise_reranker")),)
    reduction_unit = "sample"
    inputs = (
        TensorInput("logits", ("B",), differentiable=True, doc="relevance logit of each (query, document)"),
        TensorInput("labels", ("B",), dtype="mask", domain="unit_interval",
                    doc="1 = relevant, 0 = not relevant (soft targets allowed)"),
    )

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logits = upcast(inputs["logits"])
        targets = inputs["labels"].to(logits.dtype)
        losses = F.softplus(logits) - targets * logits
        with torch.no_grad():
            self.record_metrics(
                accuracy=((logits > 0) == (targets > 0.5)).float().mean(),
                relevance_probability=torch.sigmoid(logits),
            )
        return UnitLosses(losses)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return torch.tensor(inputs["logits"].shape[0], device=inputs["logits"].device)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        logits = 2.0 * torch.randn(batch_size, generator=generator, dtype=torch.float32)
        labels = (torch.arange(batch_size) % 3 == 0).to(torch.float32)
        return LossExample({"logits": logits.to(device, dtype)}, labels.to(device, dtype))
