"""Cross-entropy of an LM head fused with the head's matmul: the ``[N, V]`` logits never exist."""

from __future__ import annotations

import torch

from swift_loss_zoo.lm._fused_linear_ce_function import FusedLinearCrossEntropyFunction, default_chunk_rows
from swift_zoo import BaseLoss, ConfigError, LossExample, TensorInput, UnitLosses
from swift_zoo.losses import require_in_range, require_non_negative


class FusedLinearCrossEntropyLoss(BaseLoss):
    r"""Token cross-entropy computed from hidden states and the LM head, chunk by chunk.

    With logits :math:`z_i = W h_i + b` (never materialised for the whole batch), label :math:`y_i`,
    smoothing :math:`\varepsilon` and z-loss weight :math:`\lambda`, the per-row loss is the one of
    ``cross_entropy``:

    .. math::
        \ell_i = (1-\varepsilon)\,(\mathrm{lse}(z_i) - z_{i,y_i})
                 + \varepsilon\,\big(\mathrm{lse}(z_i) - \tfrac{1}{V}\textstyle\sum_v z_{i,v}\big)
                 + \lambda\,\mathrm{lse}(z_i)^2

    and the loss is :math:`\sum_i \ell_i / N` over rows whose label is not ``ignore_index``
    (:math:`N` = ``num_items_in_batch`` or the local count of such rows).

    **Alignment: no shift here.** Row ``i`` of ``hidden_states`` is scored against ``labels[i]``.
    For a causal LM, pass ``hidden[:, :-1].reshape(-1, H)`` with ``labels[:, 1:].reshape(-1)``, or
    ``hidden.reshape(-1, H)`` with ``swift_zoo.ops.shift_labels(labels).reshape(-1)``.

    How: rows are processed in chunks (default: as many rows as fit 64 MiB of float32 logits, at
    least 768); each chunk's logits are computed in float32 (float64 for float64 inputs) and its
    gradients with respect to the hidden states, weight and bias are computed during the forward
    pass, so backward only scales them. Ignored rows are skipped entirely. Every chunk reuses one
    logits buffer, and on CPU the softmax runs row by row over it in place (one read and one write
    of the chunk). Peak extra memory: one chunk of logits plus float32 gradient buffers of the
    hidden states and the weight. bf16/fp16
    inputs are upcast per chunk (the weight once). The idea: Liger-Kernel's fused linear
    cross-entropy (arXiv:2410.10989); label smoothing: arXiv:1512.00567; z-loss: arXiv:2204.02311.

    Defaults: ``label_smoothing=0.0``, ``z_loss=0.0``, ``ignore_index=-100``, ``chunk_size=None``
    (rows per chunk, automatic).

    Inputs: ``model_outputs["hidden_states"]`` ``[N, H]`` (final hidden states, differentiable),
    ``model_outputs["lm_head_weight"]`` ``[V, H]`` (differentiable, not batched),
    optional ``model_outputs["lm_head_bias"]`` ``[V]``, ``labels`` ``[N]`` (``-100`` = ignored).

    .. code-block:: yaml

        training_args:
          loss_type: fused_linear_cross_entropy
          loss_kwargs: {label_smoothing: 0.0, z_loss: 1.0e-4}
    """

    name = "fused_linear_cross_entropy"
    aliases = ("flce", "fused_linear_ce")
    reference = "arXiv:2410.10989"
    reduction_unit = "token"
    batch_symbol = "N"
    inputs = (
        TensorInput("hidden_states", ("N", "H"), differentiable=True, masked_by="labels", mask_shift=0,
                    doc="final hidden states, one row per scored position (already aligned with labels)"),
        TensorInput("lm_head_weight", ("V", "H"), differentiable=True, doc="LM head weight (not batched)"),
        TensorInput("lm_head_bias", ("V",), differentiable=True, optional=True, doc="LM head bias"),
        TensorInput("labels", ("N",), dtype="int", role="labels", domain="index:V",
                    doc="token ids aligned with rows, -100 = ignored"),
    )

    def __init__(
        self,
        *,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        ignore_index: int = -100,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        owner = "fused_linear_cross_entropy"
        label_smoothing = require_in_range(owner, "label_smoothing", label_smoothing, 0.0, 1.0, high_inclusive=False)
        z_loss = require_non_negative(owner, "z_loss", z_loss)
        if chunk_size is not None and chunk_size < 1:
            message = f"fused_linear_cross_entropy: chunk_size must be a positive int or None, got {chunk_size}"
            raise ConfigError(message, key="chunk_size", expected="int >= 1 or None", found=chunk_size)
        self.label_smoothing = label_smoothing
        self.z_loss = z_loss
        self.ignore_index = ignore_index
        self.chunk_size = chunk_size

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        hidden = inputs["hidden_states"]
        weight = inputs["lm_head_weight"]
        bias = inputs.get("lm_head_bias")
        labels = inputs["labels"]
        grad_on = torch.is_grad_enabled()
        want_grads = (
            grad_on and hidden.requires_grad,
            grad_on and weight.requires_grad,
            grad_on and bias is not None and bias.requires_grad,
        )
        rows = self.chunk_size or default_chunk_rows(weight.shape[0])
        losses, correct = FusedLinearCrossEntropyFunction.apply(
            hidden, weight, bias, labels.long(), self.ignore_index, float(self.label_smoothing), float(self.z_loss),
            int(rows), want_grads,
        )
        keep = labels != self.ignore_index
        self.record_metrics(token_accuracy=correct.sum() / keep.sum().clamp(min=1))
        return UnitLosses(losses, keep)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return (inputs["labels"] != self.ignore_index).sum()

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        width, vocab = 8, 13
        hidden = torch.randn(batch_size, width, generator=generator, dtype=torch.float32)
        weight = torch.randn(vocab, width, generator=generator, dtype=torch.float32) / width**0.5
        bias = 0.1 * torch.randn(vocab, generator=generator, dtype=torch.float32)
        labels = torch.randint(0, vocab, (batch_size,), generator=generator)
        labels[1::3] = -100
        outputs = {
            "hidden_states": hidden.to(device, dtype),
            "lm_head_weight": weight.to(device, dtype),
            "lm_head_bias": bias.to(device, dtype),
        }
        return LossExample(outputs, labels.to(device))
