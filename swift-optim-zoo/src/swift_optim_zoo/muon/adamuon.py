"""AdaMuon (Si et al., "AdaMuon: Adaptive Muon Optimizer", arXiv:2507.11005)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo.muon._variants import MuonVariant, ShardedItem, statistic_dtype
from swift_optim_zoo.muon.muon import _NS_DTYPES
from swift_optim_zoo.muon.newton_schulz import KELLER_COEFFICIENTS
from swift_zoo.optim import local_tensor, sharded_zeros, sum_over_shards


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
    ``adjust_lr_fn`` does not apply (the rescale replaces it). Under FSDP2 the momentum and :math:`V` stay sharded
    like the parameter: each matrix's update goes whole to its owner rank (in ``ns_dtype``), which runs
    Newton-Schulz and sends every rank its rows of :math:`O` (in ``ns_dtype``); each rank updates :math:`V` on its
    rows, and :math:`\lVert\hat O\rVert_F` comes from one all-reduce of the ranks' partial sums of squares (all
    matrices together).

    Defaults (pytorch_optimizer's): ``lr=0.02, momentum=0.9, nesterov=False, beta2=0.95, normalization_eps=1e-10,
    weight_decay=0``; inner AdamW ``adamw_lr=3e-4, adamw_betas=(0.9, 0.95)``. State per hidden matrix:
    ``momentum_buffer`` (parameter dtype), ``exp_avg_sq`` (float32), ``step``.

    .. code-block:: yaml

        training_args:
          optimizer_type: adamuon
          optimizer_kwargs: {lr: 0.02, beta2: 0.95, weight_decay: 0.01}
    """

    name = "adamuon"
    sharded_state_keys = frozenset({"momentum_buffer", "exp_avg_sq"})

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
        state["exp_avg_sq"] = sharded_zeros(param, param.shape, statistic_dtype(param))
        return state

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """Muon's momentum plus a float32 (float64) second moment of the parameter's size."""
        if not group.get("use_muon"):
            return super().state_bytes_for(param, group)
        return param.numel() * (param.element_size() + (8 if param.dtype == torch.float64 else 4))

    def _direction(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                   group: Mapping[str, Any]) -> torch.Tensor:
        update = self._momentum_update(grad, state, group)
        ortho = self._orthogonalize(update, param, group).reshape(param.shape)
        normalized = self._adapted(ortho, state, group)
        return normalized * self._rms_scale(param, torch.linalg.vector_norm(normalized), group)

    def _owner_output(self, param: torch.Tensor, update: torch.Tensor, state: dict[str, Any],
                      group: Mapping[str, Any]) -> torch.Tensor:
        """Newton-Schulz's result, in ``ns_dtype`` (every rank finishes its rows)."""
        return self._newton_schulz(update, param, group).reshape(param.shape)

    def _owner_output_dtype(self, param: torch.Tensor, group: Mapping[str, Any]) -> torch.dtype:
        return _NS_DTYPES[group["ns_dtype"]]

    def _sharded_directions(self, items: list[ShardedItem], received: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each rank's rows: V updated, the rows normalised; the norm from the ranks' partial sums of squares."""
        params = [param for param, _, _ in items]
        adapted = [self._adapted(rows.to(statistic_dtype(param)), self.state[param], group)
                   for (param, _, group), rows in zip(items, received)]
        squares = sum_over_shards(params, [rows.square().sum() for rows in adapted])
        return [rows * self._rms_scale(param, total.sqrt(), group)
                for (param, _, group), rows, total in zip(items, adapted, squares)]

    @staticmethod
    def _adapted(ortho: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> torch.Tensor:
        """``O / (sqrt(V / (1 - beta2^t)) + eps)`` after ``V``'s update (``ortho``: whole, or this rank's rows)."""
        beta2, eps = group["beta2"], group["normalization_eps"]
        second = local_tensor(state["exp_avg_sq"])
        second.mul_(beta2).addcmul_(ortho, ortho, value=1 - beta2)
        return ortho / ((second / (1 - beta2 ** state["step"])).sqrt() + eps)

    @staticmethod
    def _rms_scale(param: torch.Tensor, norm: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        """``0.2 sqrt(A B) / (||O_hat||_F + eps)``: the update at AdamW's RMS."""
        rows, cols = param.shape[0], param.numel() // param.shape[0]
        return 0.2 * math.sqrt(rows * cols) / (norm + group["normalization_eps"])
