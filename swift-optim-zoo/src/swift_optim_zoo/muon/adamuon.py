"""AdaMuon (Si et al., "AdaMuon: Adaptive Muon Optimizer", arXiv:2507.11005)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo.muon._variants import MuonVariant
from swift_optim_zoo.muon.newton_schulz import KELLER_COEFFICIENTS


class AdaMuon(MuonVariant):
    r"""AdaMuon: Muon plus an element-wise second moment of the orthogonalised update, RMS-matched to AdamW.

    For a hidden matrix :math:`W \in \mathbb{R}^{A\times B}` (Muon's routing; the rest goes to the inner AdamW):

    .. math::
        M \leftarrow \mu M + (1-\mu) G,\quad O = \mathrm{NS}_5(M\ \text{or Nesterov}),\quad
        V \leftarrow \beta_2 V + (1-\beta_2)\,O\odot O,\\
        \hat O = \frac{O}{\sqrt{V/(1-\beta_2^t)} + \epsilon},\qquad
        W \leftarrow W(1-\eta\lambda) - \eta\,\frac{0.2\sqrt{AB}}{\lVert\hat O\rVert_F + \epsilon}\,\hat O

    (arXiv:2507.11005; the form of pytorch_optimizer 4.1's ``AdaMuon`` and timm's ``adamuon``: no Nesterov by
    default, bias-corrected :math:`V`, the update rescaled to RMS 0.2 so AdamW's lr and weight decay carry over).
    ``adjust_lr_fn`` does not apply (the rescale replaces it). Whole matrices: under FSDP2 each matrix is computed
    by its owner rank.

    Defaults (pytorch_optimizer's): ``lr=0.02, momentum=0.9, nesterov=False, beta2=0.95, normalization_eps=1e-10,
    weight_decay=0``; inner AdamW ``adamw_lr=3e-4, adamw_betas=(0.9, 0.95)``. State per hidden matrix:
    ``momentum_buffer`` (parameter dtype), ``exp_avg_sq`` (float32), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: adamuon
          optimizer_kwargs: {lr: 0.02, beta2: 0.95, weight_decay: 0.01}
    """

    name = "adamuon"

    def __init__(self, params: Any, lr: float = 0.02, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0, ns_steps: int = 5,
                 ns_coefficients: tuple[float, float, float] = KELLER_COEFFICIENTS, eps: float = 1e-7,
                 ns_dtype: Literal["bfloat16", "float32", "float64"] = "bfloat16", adamw_lr: float = 3e-4,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-10, adamw_wd: float = 0.0,
                 beta2: float = 0.95, normalization_eps: float = 1e-10) -> None:
        owner = f"optimizer {self.name!r}"
        values = self._second_moment_options(owner, beta2, normalization_eps)
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                         ns_steps=ns_steps, ns_coefficients=ns_coefficients, eps=eps, ns_dtype=ns_dtype,
                         adamw_lr=adamw_lr, adamw_betas=adamw_betas, adamw_eps=adamw_eps, adamw_wd=adamw_wd)
        self._set_variant_defaults(values)

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._new_state(param, group)
        dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
        state["exp_avg_sq"] = torch.zeros(param.shape, dtype=dtype, device=param.device)
        return state

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """Muon's momentum plus a float32 (float64) second moment of the parameter's size."""
        if not group.get("use_muon"):
            return super().state_bytes_for(param, group)
        return param.numel() * (param.element_size() + (8 if param.dtype == torch.float64 else 4))

    def _direction(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                   group: Mapping[str, Any]) -> torch.Tensor:
        buffer = state["momentum_buffer"]
        buffer.lerp_(grad, 1 - group["momentum"])
        update = grad.lerp(buffer, group["momentum"]) if group["nesterov"] else buffer
        ortho = self._orthogonalize(update, param, group).reshape(param.shape)
        beta2, eps = group["beta2"], group["normalization_eps"]
        second = state["exp_avg_sq"]
        second.mul_(beta2).addcmul_(ortho, ortho, value=1 - beta2)
        normalized = ortho / ((second / (1 - beta2 ** state["step"])).sqrt() + eps)
        rows, cols = ortho.shape[0], ortho.numel() // ortho.shape[0]
        return normalized * (0.2 * math.sqrt(rows * cols) / (torch.linalg.vector_norm(normalized) + eps))
