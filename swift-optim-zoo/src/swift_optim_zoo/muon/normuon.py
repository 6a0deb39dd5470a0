"""NorMuon (Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo.muon._variants import MuonVariant, matrix_rows, statistic_dtype
from swift_optim_zoo.muon.muon import lr_scale, matrix_view
from swift_optim_zoo.muon.newton_schulz import KELLER_COEFFICIENTS
from swift_zoo.optim import group_role, local_tensor
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
    Muon's. The rescale needs whole matrices: under FSDP2 the momentum stays sharded, each matrix's update goes
    to its owner rank (in ``ns_dtype``), which keeps the row statistic and computes the direction, and every rank
    gets its rows of the direction back (float32).

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
        """The sharded momentum; the row statistic where the matrix is computed (its owner under FSDP2)."""
        state = super()._new_state(param, group)
        if not self.matrix_owners.owns(param):
            return state
        per_expert = group_role(group, param) is ParamRole.EXPERT_STACK
        rows = matrix_view(torch.empty(param.shape, device="meta"), per_expert=per_expert).shape[:-1]
        state["second_momentum_buffer"] = torch.zeros(*rows, 1, dtype=statistic_dtype(param),
                                                      device=local_tensor(param).device)
        return state

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """Muon's momentum plus one float32 (float64) per row of each matrix."""
        if not group.get("use_muon"):
            return super().state_bytes_for(param, group)
        return param.numel() * param.element_size() + matrix_rows(param, group) * (8 if param.dtype == torch.float64
                                                                                    else 4)

    def _direction(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                   group: Mapping[str, Any]) -> torch.Tensor:
        update = self._momentum_update(grad, state, group)
        return self._normalized(self._orthogonalize(update, param, group), state, group)

    def _owner_output(self, param: torch.Tensor, update: torch.Tensor, state: dict[str, Any],
                      group: Mapping[str, Any]) -> torch.Tensor:
        """The whole direction (the row statistic is the owner's)."""
        return self._normalized(self._orthogonalize(update, param, group), state, group).reshape(param.shape)

    def _owner_output_dtype(self, param: torch.Tensor, group: Mapping[str, Any]) -> torch.dtype:
        return statistic_dtype(param)

    @staticmethod
    def _normalized(ortho: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> torch.Tensor:
        """The orthogonalised matrix normalised per row by the EMA of its row mean squares, rescaled to its norm.

        Every factor is per row, so one reduction pass (the rows' sums of squares) gives them all: the matrix's
        norm is the root of their total, the normalised matrix's norm that of their total over ``(sqrt(v) + eps)^2``;
        then a single multiply writes the direction (two passes and one matrix-sized temporary, where the formula as
        written takes eight passes and four temporaries).
        """
        eps = group["normalization_eps"]
        row_sq = torch.linalg.vector_norm(ortho, dim=-1, keepdim=True).square_()
        second = state["second_momentum_buffer"]
        second.lerp_(row_sq / ortho.shape[-1], 1 - group["beta2"])
        inverse = (second.sqrt() + eps).reciprocal_()
        norm = row_sq.sum(dim=(-2, -1), keepdim=True).sqrt_()
        normalized_norm = (row_sq * inverse.square()).sum(dim=(-2, -1), keepdim=True).sqrt_()
        scale = inverse * (norm / (normalized_norm + eps)) * lr_scale(tuple(ortho.shape[-2:]), group["adjust_lr_fn"])
        return ortho * scale
