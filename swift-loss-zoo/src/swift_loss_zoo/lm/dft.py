"""Dynamic Fine-Tuning: token cross-entropy reweighted by the (detached) probability of the token."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl
from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import shift_labels, token_logps


class DFTLoss(BaseLoss):
    r"""Dynamic Fine-Tuning (DFT): SFT with each token's loss scaled by its own probability.

    With :math:`y_t` the label at :math:`t+1` (logits at :math:`t` predict it; the shift is done
    once, by :func:`swift_zoo.ops.shift_labels`) and :math:`p_t = \mathrm{softmax}(z_t)_{y_t}`,

    .. math::
        \ell_t = -\,\mathrm{sg}(p_t)\,\log p_t

    where :math:`\mathrm{sg}` stops the gradient, so
    :math:`\nabla \ell_t = -p_t \nabla \log p_t`: the SFT gradient rescaled by the token's
    probability (Wu et al., "On the Generalization of SFT: A Reinforcement Learning Perspective
    with Reward Rectification", arXiv:2508.05629). The loss is :math:`\sum_t \ell_t / N` over
    tokens whose label is not ``ignore_index`` (:math:`N` = ``num_items_in_batch`` or the local
    count), as TRL's ``loss_type="dft"`` and ms-swift's ``--enable_dft_loss``.

    Log-probabilities come from :func:`swift_zoo.ops.token_logps` (float32, chunked: no
    ``[B, T, V]`` log-softmax is held).

    Defaults: ``ignore_index=-100``.

    Inputs: ``model_outputs["logits"]`` ``[B, T, V]`` (any float dtype), ``labels`` ``[B, T]``
    (``-100`` = ignored).

    .. code-block:: yaml

        training_args:
          loss_type: dft
          loss_kwargs: {}
    """

    name = "dft"
    aliases = ("dynamic_fine_tuning",)
    reference = "arXiv:2508.05629"
    equivalents = (
        trl(call("SFTConfig", loss_type="dft"), settings="through TRL's fused LM head (add_fused_lm_head)"),
        ms_swift(flags(enable_dft_loss="true"), settings="per_token_loss_func: loss * exp(-loss).detach()"),
    )
    reduction_unit = "token"
    inputs = (
        TensorInput("logits", ("B", "T", "V"), differentiable=True, masked_by="labels", mask_shift=1,
                    doc="next-token logits"),
        TensorInput("labels", ("B", "T"), dtype="int", role="labels", domain="index:V",
                    doc="token ids, -100 = ignored"),
    )
    conformance_exemptions: ClassVar[dict[str, str]] = {  # read by swift_zoo.testing
        "check_gradcheck": (
            "the weight sg(p_t) is detached by definition, so the gradient is -p_t grad log p_t, not the "
            "derivative of the value -p_t log p_t that finite differences measure; tests/test_lm_dft.py checks "
            "the gradient against the published rule instead"
        ),
    }

    def __init__(self, *, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        labels = inputs["labels"]
        logps = token_logps(inputs["logits"], labels, ignore_index=self.ignore_index)
        keep = shift_labels(labels, self.ignore_index) != self.ignore_index
        probs = logps.detach().exp()
        with torch.no_grad():
            count = keep.sum().clamp(min=1)
            self.record_metrics(mean_token_prob=torch.where(keep, probs, 0.0).sum() / count,
                                nll=-logps.sum() / count)
        return UnitLosses(-probs * logps, keep)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        return (shift_labels(inputs["labels"], self.ignore_index) != self.ignore_index).sum()

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        seq, vocab = 6, 11
        logits = torch.randn(batch_size, seq, vocab, generator=generator, dtype=torch.float32).to(device, dtype)
        labels = torch.randint(0, vocab, (batch_size, seq), generator=generator).to(device)
        labels[::2, :2] = -100
        labels[1::3, -1] = -100
        return LossExample({"logits": logits}, labels)
