"""NorMuon (Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo.muon._variants import MuonVariant, matrix_rows
from swift_optim_zoo.muon.muon import lr_scale, matrix_view
from swift_optim_zoo.muon.newton_schulz import KELLER_COEFFICIENTS
from swift_zoo.optim import group_role
from swift_zoo.params import ParamRole


class NorMuon(MuonVariant):
    r"""NorMuon: Muon whose orthogonalised update is normalised per neuron (row) by an EMA of its row means of
    squares, then rescaled to the norm it had.

    For a hidden matrix (same routing, momentum, Newton-Schulz and lr scaling as :class:`~swift_optim_zoo.muon.Muon`):

    .. math::
        O = \mathrm{NS}_5(U),\qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\,\mathrm{mean}_j\, O_{ij}^2 \ \ (\text{one value per row } i),\\
        \hat O = \frac{O}{\sqrt{v} + \epsilon},\qquad \hat O \leftarrow \hat O\,\frac{\lVert O\rVert_F}{\lVert\hat O\rVert_F
        + \epsilon},\qquad W \leftarrow W(1-\eta\lambda) - \eta\,s(A, B)\,\hat O

    (Algorithm 1 of arXiv:2510.05491 with the norm-preserving rescale of its code and pytorch_optimizer 4.1's
    ``update_scale="preserve_norm"``; expert stacks keep one row statistic per expert row). Everything else --
    routing of embeddings, head, norms and biases to the inner AdamW, ``adjust_lr_fn``, ``ns_dtype`` -- is
    Muon's. The row statistic needs whole rows: under FSDP2 each matrix is computed by its owner rank.

    Defaults: Muon's (``lr=0.02, momentum=0.95, nesterov=True, weight_decay=0``) plus ``beta2=0.95,
    normalization_eps=1e-10`` (the paper's code). State per hidden matrix: ``momentum_buffer`` (parameter dtype)
    and ``second_momentum_buffer`` (one float32 per row), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: normuon
          optimizer_kwargs: {lr: 0.02, beta2: 0.95, adamw_lr: 3.0e-4}
    """

    name = "normuon"

    def __init__(self, params: Any, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, ns_steps: int = 5,
                 ns_coefficients: tuple[float, float, float] = KELLER_COEFFICIENTS, eps: float = 1e-7,
                 adjust_lr_fn: Literal["original", "match_rms_adamw"] = "original",
                 ns_dtype: Literal["bfloat16", "float32", "float64"] = "bfloat16", adamw_lr: float = 3e-4,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-10, adamw_wd: float = 0.0,
                 beta2: float = 0.95, normalization_eps: float = 1e-10) -> None:
        owner = f"optimizer {self.name!r}"
        values = self._second_moment_options(owner, beta2, normalization_eps)
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                         ns_steps=ns_steps, ns_coefficients=ns_coefficients, eps=eps, adjust_lr_fn=adjust_lr_fn,
                         ns_dtype=ns_dtype, adamw_lr=adamw_lr, adamw_betas=adamw_betas, adamw_eps=adamw_eps,
                         adamw_wd=adamw_wd)
        self._set_variant_defaults(values)

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._new_state(param, group)
        per_expert = group_role(group, param) is ParamRole.EXPERT_STACK
        rows = matrix_view(param, per_expert=per_expert).shape[:-1]
        dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
        state["second_momentum_buffer"] = torch.zeros(*rows, 1, dtype=dtype, device=param.device)
        return state

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """Muon's momentum plus one float32 (float64) per row of each matrix."""
        if not group.get("use_muon"):
            return super().state_bytes_for(param, group)
        return param.numel() * param.element_size() + matrix_rows(param, group) * (8 if param.dtype == torch.float64
                                                                                    else 4)

    def _direction(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                   group: Mapping[str, Any]) -> torch.Tensor:
        buffer = state["momentum_buffer"]
        buffer.lerp_(grad, 1 - group["momentum"])
        update = grad.lerp(buffer, group["momentum"]) if group["nesterov"] else buffer
        ortho = self._orthogonalize(update, param, group)
        eps = group["normalization_eps"]
        norm = torch.linalg.vector_norm(ortho, dim=(-2, -1), keepdim=True)
        second = state["second_momentum_buffer"]
        second.lerp_(ortho.square().mean(dim=-1, keepdim=True), 1 - group["beta2"])
        normalized = ortho / (second.sqrt() + eps)
        normalized = normalized * (norm / (torch.linalg.vector_norm(normalized, dim=(-2, -1), keepdim=True) + eps))
        return normalized * lr_scale(tuple(ortho.shape[-2:]), group["adjust_lr_fn"])
