"""What the logit-distillation losses share: inputs, the causal alignment, temperature, unit counting.

Inputs: ``student_logits`` and ``teacher_logits`` ``[B, T, V]`` over the same tokens, and ``labels``
``[B, T]`` whose only role is to say which positions count, with the **same causal shift as
cross-entropy**: the logits at ``t`` are compared where ``labels[t + 1] != ignore_index``
(:func:`swift_zoo.ops.shift_labels`); prompt and padding labels are ``-100``. The label *values* are
not used. Only counted positions are computed (rows gathered with the mask), so padding costs
nothing and cannot leak into the loss or its gradient. Unit: a **token**.

Both distributions are softened by the same ``temperature``: ``log p = log_softmax(logits / T)``,
in float32 at least. No ``T**2`` factor is applied (as TRL's GKD): multiply the weight instead
if you want Hinton's gradient scale.

Reductions (:data:`REDUCTIONS`; ``generalized_jsd`` takes them as ``reduction``), each a unit of the one
normalisation rule ``sum(per-unit losses) / N``:

* ``"token_mean"`` -- unit ``token``: one loss per counted token, ``N`` = counted tokens (TRL's GKD
  ``"batchmean"`` with labels, ms-swift's GKD, TRL's ``DistillationTrainer``);
* ``"batchmean"`` -- unit ``sequence``: one loss per row, the sum over its counted tokens, ``N`` = rows
  (``torch.nn.KLDivLoss(reduction="batchmean")``: the sum divided by the batch size; TRL's
  ``generalized_jsd_loss(..., labels=None, reduction="batchmean")``);
* ``"sum"`` -- unit ``batch``: one loss per micro-batch, the sum over its counted tokens, ``N`` = 1, or
  the number of micro-batches when ``num_items_in_batch`` is given (so gradient accumulation averages
  the sums, as a trainer that divides by the accumulation steps does); declared ``batch_dependent``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.losses import require_choice, require_positive
from swift_zoo.ops import shift_labels, upcast

REDUCTIONS = {"token_mean": "token", "batchmean": "sequence", "sum": "batch"}
_SUM_REASON = (
    "reduction='sum': the loss of a micro-batch is the sum over its own tokens, so it grows with the "
    "micro-batch size and a split batch (whose sums are averaged over the micro-batches) differs by design"
)


def distillation_inputs() -> tuple[TensorInput, ...]:
    return (
        TensorInput("student_logits", ("B", "T", "V"), differentiable=True, masked_by="labels", mask_shift=1,
                    doc="next-token logits of the student"),
        TensorInput("teacher_logits", ("B", "T", "V"), masked_by="labels", mask_shift=1,
                    doc="next-token logits of the teacher, same tokens"),
        TensorInput("labels", ("B", "T"), dtype="int", role="labels", domain="index:V",
                    doc="token ids, -100 where nothing is distilled (only the mask is used)"),
    )


class LogitDivergenceLoss(BaseLoss):
    """Base of the logit-distillation losses: subclasses give :meth:`divergence` per counted token."""

    inputs = distillation_inputs()
    reduction_unit: ClassVar[str] = "token"

    temperature: float
    reduction: str = "token_mean"

    def configure_temperature(self, temperature: float, ignore_index: int) -> None:
        self.temperature = require_positive(self.display_name, "temperature", temperature)
        self.ignore_index = ignore_index

    def configure_reduction(self, reduction: str) -> None:
        """Set ``reduction`` (one of :data:`REDUCTIONS`) and the reduction unit it implies."""
        self.reduction = require_choice(self.display_name, "reduction", reduction, tuple(REDUCTIONS))
        self.reduction_unit = REDUCTIONS[reduction]
        self.batch_dependent = _SUM_REASON if reduction == "sum" else None

    def reduce_tokens(self, divergences: torch.Tensor, keep: torch.Tensor) -> UnitLosses:
        """Per-unit losses for :attr:`reduction` from the ``[N]`` divergences of the counted positions ``keep``."""
        if self.reduction == "token_mean":
            return UnitLosses(divergences)
        if self.reduction == "sum":
            return UnitLosses(divergences.sum().reshape(1))
        rows = keep.nonzero()[:, 0].to(divergences.device)
        per_row = torch.zeros(keep.shape[0], dtype=divergences.dtype, device=divergences.device)
        return UnitLosses(per_row.index_add(0, rows, divergences))

    def divergence(self, student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
        """``[N]`` divergences from ``[N, V]`` student and teacher log-probabilities."""
        message = f"{type(self).__name__} must implement divergence(student_logp, teacher_logp)"
        raise NotImplementedError(message)

    def counted_positions(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_labels(labels, self.ignore_index) != self.ignore_index

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        keep = self.counted_positions(inputs["labels"])
        student = upcast(inputs["student_logits"][keep])
        teacher = upcast(inputs["teacher_logits"][keep]).to(student.dtype)
        student_logp = torch.log_softmax(student / self.temperature, dim=-1)
        teacher_logp = torch.log_softmax(teacher / self.temperature, dim=-1)
        with torch.no_grad():
            agree = (student_logp.argmax(-1) == teacher_logp.argmax(-1)).to(student_logp.dtype)
            self.record_metrics(top1_agreement=agree.mean() if agree.numel() else agree.sum())
        return self.reduce_tokens(self.divergence(student_logp, teacher_logp), keep)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        labels = self.validate(model_outputs, labels)["labels"]
        if self.reduction == "batchmean":
            return torch.tensor(labels.shape[0], device=labels.device)
        if self.reduction == "sum":
            return torch.tensor(1, device=labels.device)
        return self.counted_positions(labels).sum()

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        seq, vocab = 6, 9
        teacher = 2.0 * torch.randn(batch_size, seq, vocab, generator=generator, dtype=torch.float64)
        student = teacher + torch.randn(batch_size, seq, vocab, generator=generator, dtype=torch.float64)
        labels = torch.randint(0, vocab, (batch_size, seq), generator=generator)
        labels[:, :2] = -100  # the prompt: its positions are not distilled
        labels[1::3, -1] = -100  # padding at the end of some rows
        outputs = {"student_logits": student.to(device, dtype), "teacher_logits": teacher.to(device, dtype)}
        return LossExample(outputs, labels.to(device))
