"""Focal loss on next-token prediction."""

from __future__ import annotations

import torch

from swift_zoo import BaseLoss, ConfigError, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import shift_labels, token_logps


class FocalTokenLoss(BaseLoss):
    r"""Focal loss (Lin et al., arXiv:1708.02002) on the next token of a causal LM.

    .. math:: \ell_t = -(1 - p_t)^\gamma \log p_t,\qquad p_t = \mathrm{softmax}(z_t)[y_{t+1}]

    summed over tokens whose label is not ``-100`` and divided by their number (or
    ``num_items_in_batch``). ``gamma = 0`` is plain cross-entropy. Default ``gamma=2.0``.

    Inputs: ``logits`` ``[B, T, V]``, ``labels`` ``[B, T]``.

    .. code-block:: yaml

        training_args:
          loss_type: focal_token
          loss_kwargs: {gamma: 2.0}
    """

    name = "focal_token"
    reference = "arXiv:1708.02002"
    reduction_unit = "token"
    inputs = (
        TensorInput("logits", ("B", "T", "V"), differentiable=True, masked_by="labels", mask_shift=1),
        TensorInput("labels", ("B", "T"), dtype="int", role="labels", domain="index:V"),
    )

    def __init__(self, *, gamma: float = 2.0) -> None:
        super().__init__()
        if gamma < 0:
            message = f"focal_token: gamma must be >= 0, got {gamma}"
            raise ConfigError(message, key="gamma", expected="a float >= 0", found=gamma)
        self.gamma = gamma

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logp = token_logps(inputs["logits"], inputs["labels"])  # 0 where ignored, shift done there
        keep = shift_labels(inputs["labels"]) != self.ignore_index
        focal = (-torch.expm1(logp)).clamp(min=0).pow(self.gamma)  # (1 - p)^gamma, accurate near p = 1
        return UnitLosses(-focal * logp, keep)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        logits = torch.randn(batch_size, 5, 7, generator=generator).to(device, dtype)
        labels = torch.randint(0, 7, (batch_size, 5), generator=generator).to(device)
        labels[:, 0] = -100
        return LossExample({"logits": logits}, labels)
