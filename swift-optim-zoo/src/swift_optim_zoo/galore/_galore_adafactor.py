"""GaLore-Adafactor: Adafactor on GaLore's low-rank gradient (arXiv:2403.03507, arXiv:1804.04235)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo.adafactor._rule import adafactor_state_elements, adafactor_update, init_adafactor_state
from swift_optim_zoo.galore._hybrid import check_adam_hyperparameters
from swift_optim_zoo.galore._projected import GaLoreBase, check_projection_kwargs
from swift_zoo.optim import require_betas, require_in_range, require_non_negative, require_positive


class GaLoreAdafactor(GaLoreBase):
    r"""GaLore with Adafactor as the low-rank optimizer (galore-torch's ``GaLoreAdafactor``).

    For each routed hidden matrix, with :math:`R_t` the projected gradient (see
    :class:`~swift_optim_zoo.galore.GaLoreAdamW` for the projection and its refresh):

    .. math::
        U_t = \mathrm{Adafactor}(R_t)\ \text{(factored second moment of the } r\text{-side matrix, RMS clip } d,
              \ \hat\beta_{2,t} = 1 - t^{c}\text{, optional } \beta_1\text{; includes } \eta),\\
        W \leftarrow W - \eta\lambda W,\qquad W \leftarrow W - \alpha\,\mathrm{back}(U_t)

    (decay first, then the update, as Adafactor in transformers and galore-torch do). The learning
    rate is explicit here (no relative step). Every other parameter takes the inner AdamW with
    ``lr``, ``betas``, ``eps`` and ``weight_decay``.

    State per routed ``m x n`` matrix: the low-rank matrix's row and column statistics
    (``max(m, n) + r`` floats; ``+ r max(m, n)`` with ``beta1``) plus the ``min(m, n) x r`` basis.

    Defaults: ``lr=1e-3``, AdamW part ``betas=(0.9, 0.999), eps=1e-8``, ``weight_decay=0.0``,
    GaLore ``rank=128, update_proj_gap=200, scale=0.25``, Adafactor ``adafactor_eps=(1e-30, 1e-3),
    clip_threshold=1.0, decay_rate=-0.8, beta1=None`` (transformers' defaults).

    .. code-block:: yaml

        training_args:
          optimizer_type: galore_adafactor
          optimizer_kwargs: {lr: 1.0e-2, rank: 128, scale: 0.25}
    """

    name = "galore_adafactor"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        rank: int = 128,
        update_proj_gap: int = 200,
        scale: float = 0.25,
        proj_method: Literal["randomized", "svd"] = "randomized",
        oversampling: int = 8,
        power_iterations: int = 1,
        seed: int = 0,
        adafactor_eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = -0.8,
        beta1: float | None = None,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        check_adam_hyperparameters(owner, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        check_projection_kwargs(owner, rank=rank, update_proj_gap=update_proj_gap, scale=scale,
                                proj_method=proj_method, oversampling=oversampling,
                                power_iterations=power_iterations)
        for index, value in enumerate(require_betas(owner, "adafactor_eps", adafactor_eps, high_inclusive=True)):
            require_non_negative(owner, f"adafactor_eps[{index}]", value)
        require_positive(owner, "clip_threshold", clip_threshold)
        require_in_range(owner, "decay_rate", decay_rate, -math.inf, 0.0, low_inclusive=False, high_inclusive=False)
        if beta1 is not None:
            require_in_range(owner, "beta1", beta1, 0.0, 1.0, high_inclusive=False)
        defaults = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "rank": rank,
            "update_proj_gap": update_proj_gap, "scale": scale, "proj_method": proj_method,
            "oversampling": oversampling, "power_iterations": power_iterations, "seed": seed,
            "adafactor_eps": tuple(adafactor_eps), "clip_threshold": clip_threshold, "decay_rate": decay_rate,
            "beta1": beta1,
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Small settings for the conformance suite: rank 4, exact SVD, a refresh every 3 steps."""
        return {"lr": 1e-2, "rank": 4, "update_proj_gap": 3, "proj_method": "svd"}

    def _low_rank_state_bytes(self, rows: int, cols: int, rank: int, itemsize: int,
                              group: Mapping[str, Any]) -> int:
        low_rank = self._low_rank_shape(rows, cols, rank)
        elements = adafactor_state_elements(low_rank, use_first_moment=group["beta1"] is not None)
        return (elements + min(rows, cols) * rank) * itemsize

    def _low_rank_step(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                       group: dict[str, Any], index: int) -> None:
        low_rank, basis, side = self._projected(grad, state, group, index)
        if "exp_avg_sq_row" not in state:
            init_adafactor_state(state, low_rank.shape, dtype=low_rank.dtype, device=low_rank.device,
                                 use_first_moment=group["beta1"] is not None)
        state["step"] += 1
        lr = float(group["lr"])
        update = adafactor_update(
            low_rank, state, step=state["step"], lr=lr, eps1=float(group["adafactor_eps"][0]),
            clip_threshold=float(group["clip_threshold"]), decay_rate=float(group["decay_rate"]),
            beta1=group["beta1"],
        )
        self._apply_back_projected(param, update, basis, side, step_size=float(group["scale"]),
                                   decay=lr * group["weight_decay"], decay_first=True)
