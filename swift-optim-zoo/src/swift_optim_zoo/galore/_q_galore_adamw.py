"""Q-GaLore-AdamW: GaLore with a quantised projector and layer-adaptive lazy refresh (arXiv:2407.08296)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch

from swift_optim_zoo._projection import dequantize_groups, quantize_groups, quantized_nbytes
from swift_optim_zoo.galore._galore_adamw import GaLoreAdamW
from swift_zoo import ConfigError
from swift_zoo.optim import require_choice, require_in_range, require_int

MAX_GROUP_SIZE = 1 << 20  # codes per quantisation group; a larger group than the basis itself buys nothing

class QGaLoreAdamW(GaLoreAdamW):
    r"""GaLore-AdamW with an int8/int4 projector and a per-layer refresh interval (Zhang et al., arXiv:2407.08296).

    The update rule is :class:`~swift_optim_zoo.galore.GaLoreAdamW`'s, with two changes from Q-GaLore:

    * **Quantised projector.** After each refresh the basis is stored as ``proj_bits``-bit codes
      (8, default as in Q-GaLore's code; 4 as in the paper's headline setting) in groups of
      ``proj_group_size`` consecutive entries, each with a float32 scale and minimum
      (``x ~ code * scale + min``). Projection and back-projection use the dequantised basis.
    * **Layer-adaptive lazy refresh.** Each layer has its own interval, starting at
      ``update_proj_gap``; a refresh happens when the layer's step count is a multiple of it. At each
      refresh the cosine similarity between the leading basis vector before and after is queued
      (the last ``queue_size`` values kept); once the queue is full and its mean is at least
      ``cos_threshold``, the interval is multiplied by ``gamma_proj`` (as Q-GaLore's projector; the
      queue is kept). Basis signs are aligned with the previous basis, so the similarity measures the
      subspace, not an arbitrary SVD sign.

    Out of scope: Q-GaLore's int8 weights with stochastic rounding (the parameters stay in their own
    dtype) and its 8-bit Adam moments (the low-rank moments are float32).

    State per routed ``m x n`` matrix: ``2 max(m, n) r`` floats plus the quantised
    ``min(m, n) x r`` basis (``bits/8`` bytes per entry + 8 bytes per group).

    Defaults: GaLore's, plus ``proj_bits=8, proj_group_size=256, cos_threshold=0.4, gamma_proj=2,
    queue_size=5`` (Q-GaLore's ``run_pretrain.py`` / projector defaults).

    .. code-block:: yaml

        training_args:
          optimizer_type: q_galore_adamw
          optimizer_kwargs: {lr: 1.0e-2, rank: 256, scale: 0.25, proj_bits: 4}
    """

    name = "q_galore_adamw"

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
        proj_bits: int = 8,
        proj_group_size: int = 256,
        cos_threshold: float = 0.4,
        gamma_proj: int = 2,
        queue_size: int = 5,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        require_choice(owner, "proj_bits", proj_bits, (4, 8))
        require_int(owner, "proj_group_size", proj_group_size, low=2, high=MAX_GROUP_SIZE)
        if proj_group_size % 2:
            expected = "an even int >= 2 (int4 codes are packed in pairs)"
            message = f"{owner}: 'proj_group_size' expects {expected}, got {proj_group_size!r}"
            raise ConfigError(message, key="proj_group_size", expected=expected, found=proj_group_size)
        require_in_range(owner, "cos_threshold", cos_threshold, -1.0, 1.0)
        require_int(owner, "gamma_proj", gamma_proj, low=1, high=1 << 20)
        require_int(owner, "queue_size", queue_size, low=1, high=1 << 10)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, rank=rank,
                         update_proj_gap=update_proj_gap, scale=scale, proj_method=proj_method,
                         oversampling=oversampling, power_iterations=power_iterations, seed=seed)
        for group in self.param_groups:
            group.setdefault("proj_bits", proj_bits)
            group.setdefault("proj_group_size", proj_group_size)
            group.setdefault("cos_threshold", cos_threshold)
            group.setdefault("gamma_proj", gamma_proj)
            group.setdefault("queue_size", queue_size)
        self.defaults.update(proj_bits=proj_bits, proj_group_size=proj_group_size, cos_threshold=cos_threshold,
                             gamma_proj=gamma_proj, queue_size=queue_size)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Small settings for the conformance suite: rank 4, exact SVD, refresh every 2 steps, int8."""
        return {"lr": 1e-2, "rank": 4, "update_proj_gap": 2, "proj_method": "svd", "proj_group_size": 16,
                "queue_size": 2}

    def _low_rank_state_bytes(self, rows: int, cols: int, rank: int, itemsize: int,
                              group: Mapping[str, Any]) -> int:
        codes = quantized_nbytes(min(rows, cols) * rank, int(group["proj_bits"]), int(group["proj_group_size"]))
        return 2 * max(rows, cols) * rank * itemsize + codes

    # --------------------------------------------------------------------- quantised basis
    def _stored_basis(self, state: Mapping[str, Any], dtype: torch.dtype) -> torch.Tensor | None:
        if "basis_codes" not in state:
            return None
        return dequantize_groups(state["basis_codes"], state["basis_scale"], state["basis_min"],
                                 int(state["proj_bits"]), tuple(state["basis_shape"]), dtype=dtype)

    def _store_basis(self, state: dict[str, Any], basis: torch.Tensor, group: Mapping[str, Any]) -> None:
        bits = int(group["proj_bits"])
        codes, scale, low = quantize_groups(basis, bits, int(group["proj_group_size"]))
        state["basis_codes"], state["basis_scale"], state["basis_min"] = codes, scale, low
        state["basis_shape"] = list(basis.shape)
        state["proj_bits"] = bits
        state.setdefault("proj_gap", int(group["update_proj_gap"]))
        state.setdefault("cos_queue", [])

    def _refresh_due(self, state: Mapping[str, Any], group: Mapping[str, Any]) -> bool:
        return "basis_codes" not in state or state["step"] % int(state["proj_gap"]) == 0

    def _after_refresh(self, state: dict[str, Any], previous: torch.Tensor | None, basis: torch.Tensor,
                       group: Mapping[str, Any]) -> None:
        if previous is None:
            return
        similarity = torch.nn.functional.cosine_similarity(previous[:, 0], basis[:, 0], dim=0).item()
        queue = state["cos_queue"]
        queue.append(float(similarity))
        size = int(group["queue_size"])
        del queue[:-size]
        if len(queue) == size and sum(queue) / size >= float(group["cos_threshold"]):
            state["proj_gap"] = int(state["proj_gap"] * int(group["gamma_proj"]))
