"""AdamW with 8-bit block-wise quantised moments (Dettmers et al., "8-bit Optimizers via Block-wise
Quantization", arXiv:2110.02861), written in torch so it runs wherever torch does."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_optim_zoo._catalogue._distributed import BLOCKWISE
from swift_optim_zoo._elementwise import ShardSums
from swift_optim_zoo._fused import FusedKernel, alias, can_alias, check_fused
from swift_optim_zoo._stepping import stepped_params
from swift_optim_zoo.adamw_8bit._native_step import FULL_STEP, CodeBook, quantized_step
from swift_optim_zoo.adamw_8bit._sharded import export_state, import_state, new_quantized_state, sharded_8bit_step
from swift_optim_zoo.adamw_8bit.quantization import dequantize_blockwise, dynamic_map, midpoints, quantize_blockwise
from swift_zoo import DistributedCapability
from swift_zoo.optim import (
    ZooOptimizer,
    is_dtensor,
    is_row_sharded,
    local_tensor,
    require_betas,
    require_bool,
    require_int,
    require_non_negative,
)

QUANTIZED_KEYS = ("exp_avg_codes", "exp_avg_absmax", "exp_avg_sq_codes", "exp_avg_sq_absmax")


def stochastic_round_to_bf16(values: torch.Tensor) -> torch.Tensor:
    """float32 -> bfloat16 rounding away from zero with probability (dropped low 16 bits) / 2^16: unbiased, so
    updates far below a bf16 ulp still move the weight on average."""
    bits = values.view(torch.int32)
    noise = torch.randint(0, 1 << 16, values.shape, dtype=torch.int32, device=values.device)
    truncated = bits & -65536  # keep the sign, exponent and the 7 mantissa bits bf16 stores
    rounded = torch.where(noise < (bits & 0xFFFF), truncated + 0x10000, truncated)
    return rounded.view(torch.float32).to(torch.bfloat16)


def adamw_8bit_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg_codes: torch.Tensor,
                    exp_avg_absmax: torch.Tensor, exp_avg_sq_codes: torch.Tensor, exp_avg_sq_absmax: torch.Tensor,
                    signed_map: torch.Tensor, signed_bounds: torch.Tensor, unsigned_map: torch.Tensor,
                    unsigned_bounds: torch.Tensor, hyper: Any, *, sums: ShardSums | None = None,
                    stochastic_round: bool = False) -> None:
    """One AdamW step on ``[blocks, block_size]`` views; ``hyper`` = ``(lr, beta1, beta2, eps, weight_decay, bc1,
    sqrt_bc2)``. Computed in float32; the update uses the new moments before they are requantised."""
    lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2 = (hyper[i] for i in range(7))
    g = grad.float()
    exp_avg = dequantize_blockwise(exp_avg_codes, exp_avg_absmax, signed_map)
    exp_avg_sq = dequantize_blockwise(exp_avg_sq_codes, exp_avg_sq_absmax, unsigned_map)
    exp_avg = exp_avg + (g - exp_avg) * (1 - beta1)
    exp_avg_sq = exp_avg_sq + (g * g - exp_avg_sq) * (1 - beta2)
    updated = param.float() * (1 - lr * weight_decay) - (exp_avg / bc1) / (exp_avg_sq.sqrt() / sqrt_bc2 + eps) * lr
    codes, absmax = quantize_blockwise(exp_avg, signed_bounds)
    exp_avg_codes.copy_(codes)
    exp_avg_absmax.copy_(absmax)
    codes, absmax = quantize_blockwise(exp_avg_sq, unsigned_bounds)
    exp_avg_sq_codes.copy_(codes)
    exp_avg_sq_absmax.copy_(absmax)
    param.copy_(stochastic_round_to_bf16(updated) if stochastic_round else updated)


def adamw_full_rule(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                    hyper: Any, *, sums: ShardSums | None = None, stochastic_round: bool = False) -> None:
    """The same step with unquantised moments (tensors below ``min_8bit_size``), float32 arithmetic."""
    lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2 = (hyper[i] for i in range(7))
    g = grad.float()
    m = exp_avg.float() + (g - exp_avg.float()) * (1 - beta1)
    v = exp_avg_sq.float() + (g * g - exp_avg_sq.float()) * (1 - beta2)
    updated = param.float() * (1 - lr * weight_decay) - (m / bc1) / (v.sqrt() / sqrt_bc2 + eps) * lr
    exp_avg.copy_(m)
    exp_avg_sq.copy_(v)
    param.copy_(stochastic_round_to_bf16(updated) if stochastic_round else updated)


ADAMW_8BIT_KERNEL = FusedKernel(adamw_8bit_rule)
ADAMW_FULL_KERNEL = FusedKernel(adamw_full_rule, native=FULL_STEP)


class AdamW8bit(ZooOptimizer):
    r"""AdamW whose two moments are stored in 8 bits, block-wise: about a quarter of AdamW's state.

    The update is AdamW's (decoupled weight decay, bias corrections; arithmetic in float32):

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        \theta \leftarrow \theta(1-\eta\lambda) - \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    and between steps :math:`m` and :math:`v` are kept as uint8 codes of the dynamic map (signed for :math:`m`,
    unsigned for :math:`v`) with one float32 absmax per block of ``block_size`` elements
    (:mod:`~swift_optim_zoo.adamw_8bit.quantization`): 2 bytes per element plus ``8 / block_size``. Each step
    dequantises, updates, steps the parameter with the unrounded new moments, then requantises (nearest code), as
    bitsandbytes' and torchao's ``AdamW8bit``. Tensors with fewer than ``min_8bit_size`` elements, or whose size is
    not a multiple of ``block_size``, keep the moments unquantised in the parameter's dtype (torchao's rule;
    bitsandbytes uses the same 4096 threshold).

    Under FSDP2 the blocks and that choice are the whole tensor's, wherever the shard boundaries fall: each rank
    steps and requantises its own elements, and a block cut by a boundary gets its absmax from an exact max over
    the ranks holding part of it (:mod:`~swift_optim_zoo.adamw_8bit._sharded`), so the step is bitwise one
    process's; checkpoints hold the codes in the parameter's shape (``Shard(0)``) and the absmax whole, and load at
    any world size.

    Written in torch ops: it runs on CPU and CUDA alike. ``fused=True`` runs it as one C kernel per tensor for
    float32 CPU parameters (:mod:`~swift_optim_zoo.adamw_8bit._native_step`: each block decoded, stepped and encoded
    while in cache, a code found with one table read or, with AVX-512, by arithmetic on the map's decades), which is
    what keeps the 8-bit step within 2x of fused AdamW on an AVX-512 CPU (``benchmarks/bench_optimizers.py``:
    1.8-1.9x); elsewhere (bf16 parameters, CUDA) it compiles the rule into one pass (:mod:`swift_optim_zoo._fused`).
    ``bf16_stochastic_rounding=True`` (bf16 parameters only) writes the float32 result back with stochastic
    rounding (torchao's ``bf16_stochastic_round``), so updates smaller than a bf16 ulp are not lost; the random bits
    come from torch's global generator, so a resumed run is the same only where that generator's state is
    restored too.

    Defaults (bitsandbytes' and torchao's): ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
    block_size=256, min_8bit_size=4096``. State per quantised tensor: ``exp_avg_codes``, ``exp_avg_sq_codes``
    (uint8), ``exp_avg_absmax``, ``exp_avg_sq_absmax`` (float32 per block), ``step``; else ``exp_avg``,
    ``exp_avg_sq``.

    .. code-block:: yaml

        training_args:
          optimizer_type: adamw_8bit
          optimizer_kwargs: {lr: 2.0e-5, weight_decay: 0.1, fused: true}
    """

    name = "adamw_8bit"
    elementwise: ClassVar[bool] = True
    distributed: ClassVar[DistributedCapability] = BLOCKWISE

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, block_size: int = 256, min_8bit_size: int = 4096,
                 bf16_stochastic_rounding: bool = False, fused: bool = False) -> None:
        owner = f"optimizer {self.name!r}"
        check_fused(self.name, fused)
        defaults = {
            "lr": require_non_negative(owner, "lr", lr), "betas": require_betas(owner, "betas", betas),
            "eps": require_non_negative(owner, "eps", eps),
            "weight_decay": require_non_negative(owner, "weight_decay", weight_decay),
            "block_size": require_int(owner, "block_size", block_size, low=16, high=1 << 16),
            "min_8bit_size": require_int(owner, "min_8bit_size", min_8bit_size, low=0, high=1 << 40),
            "bf16_stochastic_rounding": require_bool(owner, "bf16_stochastic_rounding", bf16_stochastic_rounding),
            "fused": fused,
        }
        super().__init__(params, defaults)
        self._tables: dict[torch.device, tuple[torch.Tensor, ...]] = {}
        self._code_book: CodeBook | None = None

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for the suite's problems, and 8-bit states already on its small matrices."""
        return {"lr": 1e-2, "block_size": 32, "min_8bit_size": 64}

    # ------------------------------------------------------------------ state
    def _quantized(self, param: torch.Tensor, group: Mapping[str, Any]) -> bool:
        """Whether ``param`` keeps 8-bit moments: decided on the whole tensor (also when it is sharded)."""
        numel = param.numel()
        return numel >= group["min_8bit_size"] and numel % group["block_size"] == 0

    def state_bytes_for(self, param: torch.Tensor, group: Mapping[str, Any]) -> int:
        """2 bytes per element + 8 bytes per block when quantised, else AdamW's 2 words."""
        numel = local_tensor(param).numel()
        if self._quantized(param, group):
            return 2 * numel + 8 * (numel // group["block_size"])
        return 2 * numel * param.element_size()

    def _new_state(self, param: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        local = local_tensor(param)
        if not self._quantized(param, group):  # sharded like the parameter (a DTensor under FSDP2)
            return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
        zero = int(torch.searchsorted(self._maps(local.device)[0], torch.tensor(0.0, device=local.device)))
        if is_row_sharded(param):
            return new_quantized_state(param, group["block_size"], zero)
        blocks = local.numel() // group["block_size"]
        state: dict[str, Any] = {}
        for key in ("exp_avg", "exp_avg_sq"):
            state[f"{key}_codes"] = torch.zeros(local.numel(), dtype=torch.uint8, device=local.device)
            state[f"{key}_absmax"] = torch.zeros(blocks, dtype=torch.float32, device=local.device)
        state["exp_avg_codes"].fill_(zero)  # code of 0 in the signed map (0 is code 0 of the unsigned one)
        return state

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """Under FSDP2 the codes are exported as ``Shard(0)`` DTensors in the parameter's shape and the absmax
        whole, so a checkpoint loads at any world size (:mod:`swift_optim_zoo.adamw_8bit._sharded`)."""
        return export_state(self, super().state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(import_state(self, state_dict))

    def _maps(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._tables:
            signed, unsigned = dynamic_map(True, device=device), dynamic_map(False, device=device)
            self._tables[device] = (signed, midpoints(signed), unsigned, midpoints(unsigned))
        return self._tables[device]

    # ------------------------------------------------------------------- step
    def _step(self) -> None:
        sharded = []
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param, state in stepped_params(self, group, lambda p, g=group: self._new_state(p, g)):
                step = state["step"]
                hyper = (group["lr"], beta1, beta2, group["eps"], group["weight_decay"], 1 - beta1**step,
                         math.sqrt(1 - beta2**step))
                rounding = group["bf16_stochastic_rounding"] and param.dtype == torch.bfloat16
                if "exp_avg_codes" in state and is_row_sharded(param):
                    sharded.append((param, state, group, hyper, rounding))
                    continue
                self._apply(local_tensor(param), local_tensor(param.grad), state, group, hyper, rounding,
                            sharded=is_dtensor(param))
        if sharded:  # FSDP2: the whole tensors' blocks, cut by shard boundaries
            sharded_8bit_step(sharded, self._maps)

    def _apply(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: Mapping[str, Any],
               hyper: tuple[float, ...], rounding: bool, *, sharded: bool) -> None:
        fused = bool(group["fused"]) and not sharded and can_alias(param, grad)
        if "exp_avg" in state:
            tensors = (param, grad, local_tensor(state["exp_avg"]), local_tensor(state["exp_avg_sq"]))
            if fused and can_alias(*tensors[2:]):
                ADAMW_FULL_KERNEL(*tensors, scalars=hyper, owner=self.name, flat=True, stochastic_round=rounding)
            else:
                adamw_full_rule(*tensors, hyper, stochastic_round=rounding)
            return
        blocks = state["exp_avg_absmax"].numel()
        size = group["block_size"]
        tensors = (param, grad, state["exp_avg_codes"], state["exp_avg_sq_codes"])
        if fused and param.device.type == "cpu":  # float32: the C kernel, else the compiled rule
            if self._code_book is None:
                self._code_book = CodeBook(*self._maps(param.device))
            if quantized_step(param, grad, state["exp_avg_codes"], state["exp_avg_absmax"], state["exp_avg_sq_codes"],
                              state["exp_avg_sq_absmax"], self._code_book, block_size=size, scalars=hyper,
                              stochastic_round=rounding):
                return
        if fused:
            p, g, m, v = (alias(t, blocks, size) for t in tensors)
            ADAMW_8BIT_KERNEL(p, g, m, alias(state["exp_avg_absmax"]), v, alias(state["exp_avg_sq_absmax"]),
                              *self._maps(param.device), scalars=hyper, owner=self.name, stochastic_round=rounding)
            return
        target = param.view(blocks, size) if param.is_contiguous() else param.reshape(blocks, size).clone()
        g, m, v = (t.reshape(blocks, size) for t in tensors[1:])
        adamw_8bit_rule(target, g, m, state["exp_avg_absmax"], v, state["exp_avg_sq_absmax"],
                        *self._maps(param.device), hyper, stochastic_round=rounding)
        if not param.is_contiguous():
            param.copy_(target.reshape(param.shape))
