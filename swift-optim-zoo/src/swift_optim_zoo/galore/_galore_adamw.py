"""GaLore-AdamW: Adam moments in a low-rank projection of the gradient (Zhao et al., arXiv:2403.03507)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo.galore._hybrid import check_adam_hyperparameters, write_coefficients
from swift_optim_zoo.galore._projected import GaLoreBase, check_projection_kwargs
from swift_zoo.optim import require_bool


class GaLoreAdamW(GaLoreBase):
    r"""GaLore with Adam in the low-rank space (Zhao et al., ICML 2024, arXiv:2403.03507).

    For each hidden matrix :math:`W \in \mathbb{R}^{m\times n}` with :math:`r < \min(m, n)`, gradient
    :math:`G_t`, and a basis :math:`B` (``k x r``, ``k = min(m, n)``, orthonormal columns) recomputed
    from :math:`G_t` every ``update_proj_gap`` steps (the first step included):

    .. math::
        R_t = G_t B \ (m \ge n) \ \text{or}\ B^\top G_t \ (m < n),\quad
        M_t = \beta_1 M_{t-1} + (1-\beta_1) R_t,\quad V_t = \beta_2 V_{t-1} + (1-\beta_2) R_t^2,\\
        W \leftarrow W - \eta\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\;
            \alpha\,\mathrm{back}\!\Big(\frac{M_t}{\sqrt{V_t}+\epsilon}\Big),\qquad
        W \leftarrow W - \eta\lambda W

    with ``back(N) = N B^T`` (right) or ``B N`` (left) and :math:`\alpha` = ``scale``. The moments are
    neither reset nor rotated at a refresh (as galore-torch). Arithmetic as galore-torch's ``AdamW``
    (``eps`` added to :math:`\sqrt{V}`, bias corrections folded in the step size, decoupled weight
    decay applied full-rank after the update). Every other parameter (embeddings, head, norms,
    biases, expert stacks, matrices with ``min(m, n) <= rank``) takes torch's AdamW with the same
    group hyperparameters.

    Differences from galore-torch, on purpose: the moments and the basis are float32 for bf16
    parameters; the basis signs are fixed (aligned with the previous basis), so the result does not
    depend on the SVD backend; ``proj_method="randomized"`` (default) refreshes with a randomized
    range finder (``rank + oversampling`` probes, ``power_iterations`` power iterations), about 20x
    cheaper than the exact SVD on 2048x2048 for a few percent more residual; ``"svd"`` is the exact
    refresh of the paper. Tensors only in the state: ``torch.load(weights_only=True)`` reads it, and
    resuming continues the same trajectory, refresh schedule included.

    **galore-torch compatibility** (``galore_torch_compat=True``, opt-in): reproduces galore-torch 1.0's
    ``AdamW`` exactly, for runs that must match published ones. The basis is the exact SVD of the gradient
    itself with the signs LAPACK returns (``proj_method`` is ignored), and the parameters the projection does not
    act on take galore-torch's AdamW arithmetic instead of torch's: ``eps`` added to :math:`\sqrt{V}` (not to
    :math:`\sqrt{V/(1-\beta_2^t)}`), the bias corrections folded into the step size, and weight decay applied
    after the update. The refresh schedule is galore-torch's in both modes: the basis is recomputed before the
    step counter increments, at 1-based steps 1, 1 + gap, 1 + 2 gap, ... (1, 6, 11 for ``update_proj_gap=5``).
    Raw signs make the trajectory depend on the LAPACK build after the second refresh (Adam moments kept across
    a sign flip change meaning), which is why the default aligns them.

    Gradient clipping (the trainer's ``clip_grad_norm_``) acts on full-rank gradients, before the
    projection. Under FSDP2 each matrix's gradient goes whole to one owner rank, which keeps the basis and
    the moments; every rank gets back only what its rows need (the row-aligned low-rank factor's rows and
    the other factor) and applies the same ``addmm`` (see :mod:`swift_optim_zoo.galore._hybrid`). Flat
    partitions (ZeRO, FSDP1 ``use_orig_params=False``) are refused: the projection needs whole matrices.

    State per routed ``m x n`` matrix: ``2 max(m, n) r + min(m, n) r`` floats.

    Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0`` (galore-torch's AdamW; the HF
    Trainer passes its own ``adam_epsilon``, 1e-8), ``rank=128, update_proj_gap=200, scale=0.25``
    (README and HF Trainer).

    .. code-block:: yaml

        training_args:
          optimizer_type: galore_adamw
          optimizer_kwargs: {lr: 1.0e-2, rank: 128, update_proj_gap: 200, scale: 0.25}
    """

    name = "galore_adamw"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        rank: int = 128,
        update_proj_gap: int = 200,
        scale: float = 0.25,
        proj_method: Literal["randomized", "svd"] = "randomized",
        oversampling: int = 8,
        power_iterations: int = 1,
        seed: int = 0,
        galore_torch_compat: bool = False,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        check_adam_hyperparameters(owner, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        check_projection_kwargs(owner, rank=rank, update_proj_gap=update_proj_gap, scale=scale,
                                proj_method=proj_method, oversampling=oversampling,
                                power_iterations=power_iterations)
        defaults = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "rank": rank,
            "update_proj_gap": update_proj_gap, "scale": scale, "proj_method": proj_method,
            "oversampling": oversampling, "power_iterations": power_iterations, "seed": seed,
            "galore_torch_compat": require_bool(owner, "galore_torch_compat", galore_torch_compat),
        }
        super().__init__(params, defaults)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Small settings for the conformance suite: rank 4, exact SVD, a refresh every 3 steps."""
        return {"lr": 1e-2, "rank": 4, "update_proj_gap": 3, "proj_method": "svd"}

    def _full_rank_step(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        """torch's AdamW, or galore-torch's AdamW arithmetic with ``galore_torch_compat``."""
        if not group.get("galore_torch_compat", False):
            super()._full_rank_step(params, group)
            return
        beta1, beta2 = group["betas"]
        for param in params:
            state = self.state[param]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["step"] += 1
            step = float(state["step"])
            grad = param.grad
            state["exp_avg"].mul_(beta1).add_(grad, alpha=1.0 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            step_size = group["lr"] * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
            param.addcdiv_(state["exp_avg"], state["exp_avg_sq"].sqrt().add_(group["eps"]), value=-step_size)
            if group["weight_decay"] > 0:
                param.add_(param, alpha=-group["lr"] * group["weight_decay"])

    def _low_rank_state_bytes(self, rows: int, cols: int, rank: int, itemsize: int,
                              group: Mapping[str, Any]) -> int:
        return (2 * max(rows, cols) * rank + self._basis_elements(rows, cols, rank, group)) * itemsize

    def _basis_elements(self, rows: int, cols: int, rank: int, group: Mapping[str, Any]) -> int:
        return min(rows, cols) * rank

    def _owner_step(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any],
                    index: int) -> list[torch.Tensor]:
        low_rank, basis, _ = self._projected(grad, state, group, index)
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(low_rank)
            state["exp_avg_sq"] = torch.zeros_like(low_rank)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        beta1, beta2 = group["betas"]
        state["step"] += 1
        step = state["step"]
        exp_avg.mul_(beta1).add_(low_rank, alpha=1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(low_rank, low_rank, value=1.0 - beta2)
        step_size = group["lr"] * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
        normalized = exp_avg / (exp_avg_sq.sqrt() + group["eps"])
        beta, alpha = self._coefficients(step_size * float(group["scale"]), group["lr"] * group["weight_decay"],
                                         decay_first=False)
        return [normalized, basis, write_coefficients(beta, alpha, normalized)]
