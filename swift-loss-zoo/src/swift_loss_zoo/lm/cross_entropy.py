"""Causal-LM token cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import call, flags, ms_swift, transformers, trl
from swift_zoo import BaseLoss, ConfigError, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import shift_labels, upcast


class CrossEntropyLoss(BaseLoss):
    r"""Token cross-entropy of a causal LM, with label smoothing and z-loss.

    With :math:`y_t` the label at :math:`t+1` (logits at :math:`t` predict it; the shift is done
    here, once), :math:`\log p = \log\mathrm{softmax}(z_t)`, smoothing :math:`\varepsilon` and
    z-loss weight :math:`\lambda`, the per-token loss is

    .. math::
        \ell_t = (1-\varepsilon)\,(-\log p_{y_t}) + \varepsilon\,\frac{1}{V}\sum_v(-\log p_v)
                 + \lambda\,\big(\log\textstyle\sum_v e^{z_{t,v}}\big)^2

    and the loss is :math:`\sum_t \ell_t / N` over tokens whose label is not ``ignore_index``
    (:math:`N` = ``num_items_in_batch`` or the local count of such tokens).

    Label smoothing: Szegedy et al., arXiv:1512.00567. z-loss: PaLM, arXiv:2204.02311.

    Defaults: ``label_smoothing=0.0``, ``z_loss=0.0``, ``ignore_index=-100``.

    Inputs: ``model_outputs["logits"]`` ``[B, T, V]`` (any float dtype; computed in float32),
    ``labels`` ``[B, T]`` (``-100`` = ignored).

    .. code-block:: yaml

        training_args:
          loss_type: cross_entropy
          loss_kwargs: {label_smoothing: 0.1, z_loss: 1.0e-4}
    """

    name = "cross_entropy"
    aliases = ("ce", "nll")
    reference = "arXiv:1512.00567"
    equivalents = (
        trl(call("SFTConfig", loss_type="nll"), settings="through TRL's fused LM head (add_fused_lm_head)"),
        transformers(call("ForCausalLMLoss"), settings="transformers.loss.loss_utils, the causal-LM loss of every "
                                                      "*ForCausalLM model, with num_items_in_batch"),
        ms_swift(flags(loss_type="cross_entropy"), settings="swift.loss.CustomCrossEntropyLoss (torch.roll shift)"),
    )
    reduction_unit = "token"
    inputs = (
        TensorInput("logits", ("B", "T", "V"), differentiable=True, masked_by="labels", mask_shift=1,
                    doc="next-token logits"),
        TensorInput("labels", ("B", "T"), dtype="int", role="labels", domain="index:V",
                    doc="token ids, -100 = ignored"),
    )

    def __init__(self, *, label_smoothing: float = 0.0, z_loss: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            message = f"cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing}"
            raise ConfigError(message, key="label_smoothing", expected="float in [0, 1)", found=label_smoothing)
        if z_loss < 0.0:
            message = f"cross_entropy: z_loss must be >= 0, got {z_loss}"
            raise ConfigError(message, key="z_loss", expected="float >= 0", found=z_loss)
        self.label_smoothing = label_smoothing
        self.z_loss = z_loss
        self.ignore_index = ignore_index

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logits = upcast(inputs["logits"])
        targets = shift_labels(inputs["labels"], self.ignore_index)
        keep = targets != self.ignore_index
        flat = logits.reshape(-1, logits.shape[-1])
        per_token = F.cross_entropy(
            flat, targets.reshape(-1), ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing, reduction="none",
        ).reshape(targets.shape)
        if self.z_loss:
            per_token = per_token + self.z_loss * torch.logsumexp(logits, dim=-1).pow(2)
        with torch.no_grad():
            correct = (logits.argmax(-1) == targets) & keep
            self.record_metrics(token_accuracy=correct.sum() / keep.sum().clamp(min=1))
        return UnitLosses(per_token, keep)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return (shift_labels(inputs["labels"], self.ignore_index) != self.ignore_index).sum()

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        seq, vocab = 6, 11
        logits = torch.randn(batch_size, seq, vocab, generator=generator, dtype=torch.float32).to(device, dtype)
        labels = torch.randint(0, vocab, (batch_size, seq), generator=generator).to(device)
        labels[::2, :2] = -100  # prompt tokens of every other row; other rows keep labels[:, 0]
        labels[1::3, -1] = -100
        return LossExample({"logits": logits}, labels)
