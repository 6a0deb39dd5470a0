"""Listwise reranker: softmax cross-entropy over a query's candidate documents."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import flags, ms_swift
from swift_zoo import BaseLoss, ConfigError, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import upcast


class ListwiseRerankerLoss(BaseLoss):
    r"""Softmax cross-entropy picking the positive document among a query's candidates.

    Row :math:`i` holds the logits :math:`z_{i,0..G-1}` of one query's candidates, **column 0 being
    the positive** (ms-swift's convention: each group starts with its positive), the others
    negatives. With temperature :math:`\tau` and the valid candidates :math:`V_i`
    (``candidate_mask``; all when absent)

    .. math::
        \ell_i = -\log \frac{e^{z_{i,0}/\tau}}{\sum_{g \in V_i} e^{z_{i,g}/\tau}}, \qquad
        L = \frac{1}{N}\sum_{i \text{ counted}} \ell_i

    A row counts when its positive is valid and it has at least ``min_group_size`` valid
    candidates (ms-swift skips smaller groups); :math:`N` = ``num_items_in_batch`` or the local
    number of counted rows, and a batch with none gives 0. ms-swift ``listwise_reranker``
    (flat ``[N, 1]`` logits whose groups start at each ``label == 1``: reshape them to
    ``[B, G]`` and pad with ``candidate_mask``). ListNet-style softmax CE, as in
    arXiv:2101.08751 (localized contrastive estimation).

    Defaults (ms-swift's environment variables): ``temperature=1.0``
    (``LISTWISE_RERANKER_TEMPERATURE``), ``min_group_size=2`` (``LISTWISE_RERANKER_MIN_GROUP_SIZE``).

    Inputs: ``model_outputs["logits"]`` ``[B, G]``, optional ``model_outputs["candidate_mask"]``
    ``[B, G]`` (1 = real candidate, 0 = padding).

    .. code-block:: yaml

        training_args:
          loss_type: listwise_reranker
          loss_kwargs: {temperature: 1.0, min_group_size: 2}
    """

    name = "listwise_reranker"
    reference = "arXiv:2101.08751"
    equivalents = (
        ms_swift(flags(task_type="reranker", loss_type="listwise_reranker"),
                 settings="LISTWISE_RERANKER_TEMPERATURE=1.0, LISTWISE_RERANKER_MIN_GROUP_SIZE=2; its flat logits "
                          "reshaped to [B, G] with candidate_mask"),
    )
    reduction_unit = "query"
    inputs = (
        TensorInput("logits", ("B", "G"), differentiable=True, masked_by="candidate_mask",
                    doc="relevance logits of each query's candidates; column 0 is the positive"),
        TensorInput("candidate_mask", ("B", "G"), dtype="mask", optional=True, role="mask",
                    doc="1 = real candidate, 0 = padding"),
    )

    def __init__(self, *, temperature: float = 1.0, min_group_size: int = 2) -> None:
        super().__init__()
        if not temperature > 0.0:
            message = f"listwise_reranker: temperature must be a float > 0, got {temperature!r}"
            raise ConfigError(message, key="temperature", expected="float > 0", found=temperature)
        if min_group_size < 1:
            message = f"listwise_reranker: min_group_size must be an int >= 1, got {min_group_size!r}"
            raise ConfigError(message, key="min_group_size", expected="int >= 1", found=min_group_size)
        self.temperature = temperature
        self.min_group_size = min_group_size

    def _valid(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(valid candidates ``[B, G]``, counted rows ``[B]``)."""
        logits = inputs["logits"]
        valid = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
        if inputs.get("candidate_mask") is not None:
            valid = inputs["candidate_mask"].to(device=logits.device) != 0
        counted = valid[:, 0] & (valid.sum(dim=1) >= self.min_group_size)
        return valid, counted

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        valid, counted = self._valid(inputs)
        # the positive column always enters the softmax, so a row is never all -inf (finite grads);
        # rows whose positive is padding are not counted
        valid = valid.clone()
        valid[:, 0] = True
        raw = upcast(inputs["logits"])
        logits = torch.where(valid, raw, torch.zeros_like(raw)) / self.temperature
        losses = torch.logsumexp(logits.masked_fill(~valid, -torch.inf), dim=1) - logits[:, 0]
        with torch.no_grad():
            top = logits.masked_fill(~valid, -torch.inf).argmax(dim=1) == 0
            self.record_metrics(accuracy=(top & counted).sum() / counted.sum().clamp(min=1))
        return UnitLosses(losses, counted)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return self._valid(inputs)[1].sum()

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        groups = 4
        logits = 1.5 * torch.randn(batch_size, groups, generator=generator, dtype=torch.float32)
        logits[:, 0] += 1.0  # the positive tends to score higher
        mask = torch.ones(batch_size, groups, dtype=torch.bool)
        mask[1::2, -1] = False  # every other query has one candidate fewer
        return LossExample({"logits": logits.to(device, dtype), "candidate_mask": mask.to(device)})
