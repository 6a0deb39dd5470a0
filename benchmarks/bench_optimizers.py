"""Every registered optimizer vs torch AdamW: step time, optimizer-state bytes, loss curves; Muon vs torch Muon.

Model for step time and state: an embedding, ``BLOCKS`` Linear 2048x2048 blocks (no bias) each behind
an RMSNorm, a final RMSNorm and an untied head (vocab 2048): about 50 M parameters, 83 % of them in
hidden matrices. Fixed random gradients; every optimizer steps the same parameters.

* **step time**: each optimizer in a fresh process (``_measure.run_worker``) beside
  ``torch.optim.AdamW(fused=True)`` and ``AdamW(foreach=True)`` on the same parameters, the three
  interleaved per round in a rotating order; medians. Step 1 is timed on its own: it allocates the state and, for
  low-rank and preconditioned methods (GaLore, APOLLO, SOAP), computes the first projection /
  eigenbasis (the refresh that recurs every ``update_proj_gap`` / ``precondition_frequency``).
* **state**: ``swift_zoo.optim.measure_state_bytes`` after the steps, vs AdamW's; also on the
  parameters the method acts on (its spec ``roles``), since embeddings and the head go through an
  inner AdamW in the hybrid methods: whole-model ratio = f + (1 - f) * targeted ratio, f = share of
  the other parameters.
* **Muon vs torch.optim.Muon** on the model's hidden matrices, same settings, interleaved.
* **loss curves**: every optimizer on the same tiny causal LM task (Markov-chain tokens), same data
  order, plotted to ``benchmarks/results/optimizer_curves.png``.

Run (heavy: take the lock):  ``flock /tmp/swiftzoo-heavy.lock python benchmarks/bench_optimizers.py``
Smoke run (seconds, asserts nothing about speed):  ``python benchmarks/bench_optimizers.py --quick``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import markdown_table, report_header, run_worker, worker_main

RESULTS = Path(__file__).resolve().parent / "results"
CURVES_DUMP = Path(tempfile.gettempdir()) / "bench_optimizers_curves.json"
MIB = 2**20

FULL = {"vocab": 2048, "hidden": 2048, "blocks": 10, "rounds": 15, "slow_rounds": 3, "curve_steps": 200,
        "curve_batch": 16, "curve_seq": 32}
QUICK = {"vocab": 64, "hidden": 64, "blocks": 2, "rounds": 2, "slow_rounds": 1, "curve_steps": 6,
         "curve_batch": 4, "curve_seq": 16}
SLOW = {"muon", "soap", "normuon", "adamuon", "muon_clip", "scion", "kron"}  # seconds per step on this CPU: fewer rounds

# Step-time / state settings per optimizer (defaults otherwise), one row each. GaLore at rank 128 is the
# stated goal; the element-wise methods also run with fused=True (compiled per-tensor kernels, C kernels for
# Adafactor's and APOLLO's full-rank passes), as AdamW does.
STEP_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "galore_adamw": [{"rank": 128}],
    "galore_adafactor": [{"rank": 128}],
    "q_galore_adamw": [{"rank": 128}],
    "lion": [{}, {"fused": True}],
    "adam_mini": [{}, {"fused": True}],
    "schedule_free_adamw": [{}, {"fused": True}],
    "adafactor": [{}, {"fused": True}, {"fused": True, "lr": 1e-3}],  # default (relative step) and HF Trainer modes
    "apollo_adamw": [{}, {"fused": True}],
    "apollo_mini": [{}, {"fused": True}],
    "adamw": [{}, {"cautious": True, "fused": True}],
    "adamw_8bit": [{}, {"fused": True}],
    **{name: [{}, {"fused": True}] for name in ("adopt", "ademamix", "mars", "lamb", "adan", "stable_adamw", "sgd",
                                               "prodigy")},
}
# Ops whose time is the method's own dense linear algebra (projections, Newton-Schulz, eigenbases):
# the "method kernels" column, measured with torch.profiler on two extra steps.
METHOD_OPS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::addbmm",
              "aten::linalg_eigh", "aten::_linalg_eigh", "aten::linalg_qr", "aten::_linalg_svd", "aten::linalg_svd",
              "aten::geqrf", "aten::orgqr", "aten::linalg_householder_product")
# The issue names these as costing more by method (Muon's Newton-Schulz, SOAP's eigenbases): reported apart.
METHOD_COST = {"muon": "Newton-Schulz", "soap": "eigenbases and their statistics"}
# Learning rates for the tiny LM curves (a reasonable value per method, not a sweep).
CURVE_KWARGS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": 3e-3},
    "adam_mini": {"lr": 3e-3},
    "lora_plus": {"lr": 3e-3},
    "lion": {"lr": 1e-3, "weight_decay": 0.1},
    "muon": {"lr": 0.02, "adamw_lr": 3e-3},
    "schedule_free_adamw": {"lr": 3e-3},
    "soap": {"lr": 3e-3},
    "adafactor": {"lr": 3e-3},
    "galore_adamw": {"lr": 3e-3, "rank": 16, "update_proj_gap": 50, "scale": 1.0},
    "galore_adafactor": {"lr": 3e-3, "rank": 16, "update_proj_gap": 50, "scale": 1.0},
    "q_galore_adamw": {"lr": 3e-3, "rank": 16, "update_proj_gap": 50, "scale": 1.0},
    "apollo_adamw": {"lr": 3e-3, "rank": 16, "update_proj_gap": 50},
    "apollo_mini": {"lr": 3e-3, "update_proj_gap": 50},
    "adamw_8bit": {"lr": 3e-3, "min_8bit_size": 1024},  # the tiny LM's 64x64 matrices in 8 bits too
    "sgd": {"lr": 0.1, "nesterov": True},
    "prodigy": {},
    "normuon": {"lr": 0.02, "adamw_lr": 3e-3},
    "adamuon": {"lr": 3e-3, "adamw_lr": 3e-3},
    "muon_clip": {"lr": 3e-3, "adamw_lr": 3e-3, "weight_decay": 0.0, "adamw_wd": 0.0},
    "scion": {"lr": 0.02},
    "kron": {"lr": 1e-3},
}
GOALS = [  # (optimizer, limit on the state ratio, text)
    ("galore_adamw", 0.25, "GaLore-AdamW state <= 25% of AdamW at rank 128"),
    ("apollo_mini", 0.02, "APOLLO-Mini state <= 2% of AdamW"),
    ("muon", 0.55, "Muon state <= 55% of AdamW"),
    ("lion", 0.55, "Lion state <= 55% of AdamW"),
    ("adamw_8bit", 0.27, "AdamW-8bit state <= 27% of AdamW"),
]
STEP_GOAL = 1.5
OWN_STEP_GOALS = {"adamw_8bit": 2.0}  # optimizers the issue gives a step goal of their own (8-bit: decode + encode)
NOTES = """### Reading the numbers

* The machine is shared (2 vCPUs, several engineers' jobs): absolute times move by 2-5x between
  runs, and so can a baseline inside one worker; only the ratios taken inside one worker mean
  something, and even they carry +-30 %.
* `torch.optim.AdamW(fused=True)` is one C++ kernel per tensor (a single pass over memory). An
  element-wise method written with torch ops makes 4-8 passes (Lion 4, Adam-mini 5, schedule-free 8);
  `fused=True` (Lion, Adam-mini, schedule-free AdamW, Adafactor's 1-D tensors) runs each method's
  per-tensor rule as one C loop for float32 CPU tensors (`swift_optim_zoo/_native_rules.py`, built
  once per machine in about a second: `benchmarks/bench_first_step.py`), and compiles it with
  `torch.compile` elsewhere (bf16 parameters, CUDA; APOLLO's low-rank moments), `swift_optim_zoo/_fused.py`.
* Adafactor needs three dependent passes per matrix (row/column statistics; then the RMS of the
  update, which the clipping divides by; then the write) where AdamW needs one. `fused=True` runs
  them as C kernels (`swift_optim_zoo/_native.py`: one read of the matrix each, four rows side by
  side), which brings the explicit-lr mode (HF Trainer's) under fused AdamW. The default mode
  (relative step scaled by the parameter's RMS) also reads every parameter before writing it.
* Methods that cost more by design: Muon (5 Newton-Schulz iterations = 15 matmuls per 2048x2048
  matrix per step, bf16; same-shape matrices iterate together in buffers allocated once), SOAP (6 fp32
  matmuls per matrix per step plus element-wise updates of two 2048x2048 statistics per matrix, `eigh`
  at step 1, a refresh every 10 steps: one more product and a QR per side and the momentum re-rotated,
  3x AdamW's state),
  GaLore / APOLLO (projections each step, an SVD or random projection at each refresh: step 1
  column). The 'method kernels' column measures the dense linear algebra; what remains is compared
  with fused AdamW. APOLLO's remainder is its full-rank passes (the scaled gradient's norm for the
  norm-growth limiter, then the scaled write) and its low-rank Adam moments; `fused=True` runs the
  first two as C kernels and the moments with their channel norms as one compiled loop.
* State goals: for hybrid methods the whole-model ratio is f + (1 - f) * (ratio on targeted params),
  f = share of parameters they leave to the inner AdamW (embedding + head = 17 % here). APOLLO-Mini
  and Muon meet their goals on the matrices they act on, not on this whole model; on a model whose
  embedding and head are a smaller share (7B-class LLMs: ~4 %) the whole-model ratio approaches
  the targeted one.
"""


# ------------------------------------------------------------------ models (built inside workers)
def build_bench_model(vocab: int, hidden: int, blocks: int) -> Any:
    from torch import nn

    class BenchLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.norms = nn.ModuleList(nn.RMSNorm(hidden) for _ in range(blocks))
            self.blocks = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(blocks))
            self.final_norm = nn.RMSNorm(hidden)
            self.lm_head = nn.Linear(hidden, vocab, bias=False)

        def forward(self, ids: Any) -> Any:
            h = self.embed(ids)
            for norm, block in zip(self.norms, self.blocks):
                h = h + block(norm(h))
            return self.lm_head(self.final_norm(h))

    return BenchLM()


def build_tiny_lm(vocab: int, dim: int, heads: int) -> Any:
    import torch
    from torch import nn

    class Attention(nn.Module):
        qk_logits_from_projections = True  # muon_clip: logits are q_proj(x) k_proj(x)^T per head, causal

        def __init__(self) -> None:
            super().__init__()
            self.num_heads = heads
            self.q_proj = nn.Linear(dim, dim, bias=False)
            self.k_proj = nn.Linear(dim, dim, bias=False)
            self.v_proj = nn.Linear(dim, dim, bias=False)
            self.o_proj = nn.Linear(dim, dim, bias=False)

        def forward(self, x: Any) -> Any:
            b, t, _ = x.shape
            q, k, v = (proj(x).view(b, t, heads, -1).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
            out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o_proj(out.transpose(1, 2).reshape(b, t, dim))

    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            self.pos = nn.Parameter(torch.randn(64, dim) * 0.02)
            self.attn_norm = nn.RMSNorm(dim)
            self.attn = Attention()
            self.mlp_norm = nn.RMSNorm(dim)
            self.up = nn.Linear(dim, 4 * dim)
            self.down = nn.Linear(4 * dim, dim)
            self.final_norm = nn.RMSNorm(dim)
            self.lm_head = nn.Linear(dim, vocab, bias=False)

        def forward(self, ids: Any) -> Any:
            h = self.embed(ids) + self.pos[: ids.shape[1]]
            h = h + self.attn(self.attn_norm(h))
            h = h + self.down(nn.functional.gelu(self.up(self.mlp_norm(h))))
            return self.lm_head(self.final_norm(h))

    return TinyLM()


# ------------------------------------------------------------------ worker cases
def _storage_bytes(values: Any, seen: set[int]) -> int:
    import torch

    total = 0
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor) and hasattr(value, "__tensor_flatten__"):
            names, _ = value.__tensor_flatten__()  # a tensor subclass (torchao's 8/4-bit state): its inner tensors
            stack.extend(getattr(value, name) for name in names)
        elif isinstance(value, torch.Tensor):
            key = value.untyped_storage().data_ptr() if value.numel() else id(value)
            if key not in seen:
                seen.add(key)
                total += value.untyped_storage().nbytes() if value.numel() else 0
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return total


def case_step(config: dict[str, Any]) -> dict[str, Any]:
    import torch

    import swift_zoo
    from swift_zoo.optim import measure_state_bytes
    from swift_zoo.params import classify_parameters

    name, shape, kwargs = config["optimizer"], config["shape"], config.get("kwargs", {})
    torch.manual_seed(0)
    model = build_bench_model(shape["vocab"], shape["hidden"], shape["blocks"])
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    entry = swift_zoo.REGISTRY.resolve("optimizer", name)
    target = swift_zoo.build_optimizer(name, model, **kwargs)
    fused = torch.optim.AdamW(params, lr=1e-3, fused=True)
    foreach = torch.optim.AdamW(params, lr=1e-3, foreach=True)

    def timed(opt: Any) -> float:
        start = time.perf_counter()
        opt.step()
        return time.perf_counter() - start

    first = {"target": timed(target), "fused": timed(fused), "foreach": timed(foreach)}
    rounds = config["rounds"]
    times: dict[str, list[float]] = {"target": [], "fused": [], "foreach": []}
    order = [("target", target), ("fused", fused), ("foreach", foreach)]
    for round_index in range(rounds):  # rotate the order: no method always runs after the same one
        shift = round_index % len(order)
        for key, opt in order[shift:] + order[:shift]:
            times[key].append(timed(opt))
    profiled_s, method_s = _method_kernel_seconds(target, steps=2)
    roles = set(entry.spec.roles)
    param_roles = classify_parameters(model)
    by_id = {id(p): param_roles[n].value for n, p in model.named_parameters()}
    targeted = [p for p in params if "all" in roles or by_id[id(p)] in roles]
    seen_t: set[int] = set()
    seen_a: set[int] = set()
    return {
        "optimizer": name,
        "distribution": entry.distribution,
        "num_params": sum(p.numel() for p in params),
        "targeted_params": sum(p.numel() for p in targeted),
        "first_step_s": first["target"],
        "adamw_first_step_s": first["fused"],
        "step_s": statistics.median(times["target"]),
        "fused_s": statistics.median(times["fused"]),
        "foreach_s": statistics.median(times["foreach"]),
        "step_times_s": times["target"],
        "method_kernels_s": method_s,
        "profiled_step_s": profiled_s,
        "state_bytes": measure_state_bytes(target),
        "adamw_state_bytes": measure_state_bytes(fused),
        "targeted_state_bytes": sum(_storage_bytes(target.state.get(p, {}), seen_t) for p in targeted),
        "targeted_adamw_bytes": sum(_storage_bytes(fused.state.get(p, {}), seen_a) for p in targeted),
        "kwargs": kwargs,
    }


def _method_kernel_seconds(opt: Any, *, steps: int) -> tuple[float, float]:
    """``(wall seconds per profiled step, seconds per step in METHOD_OPS)`` (self CPU time, torch.profiler):
    the rest of a step is the difference of the two, taken from the same steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        wall = (time.perf_counter() - start) / steps
    total_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in METHOD_OPS)
    return wall, total_us / 1e6 / steps


def case_muon_vs_torch(config: dict[str, Any]) -> dict[str, Any]:
    import torch

    from swift_optim_zoo.muon import Muon

    shape = config["shape"]
    torch.manual_seed(0)
    model = build_bench_model(shape["vocab"], shape["hidden"], shape["blocks"])
    matrices = [block.weight for block in model.blocks]
    gen = torch.Generator().manual_seed(1)
    for p in matrices:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    settings = {"lr": 0.02, "weight_decay": 0.0, "momentum": 0.95, "nesterov": True}
    ours = Muon(matrices, adjust_lr_fn="original", **settings)
    theirs = torch.optim.Muon(matrices, adjust_lr_fn="original", **settings)
    times: dict[str, list[float]] = {"ours": [], "torch": []}
    for opt in (ours, theirs):  # warm-up + state allocation
        opt.step()
    for round_index in range(config["rounds"]):
        pairs = (("ours", ours), ("torch", theirs))
        for key, opt in pairs if round_index % 2 == 0 else pairs[::-1]:
            start = time.perf_counter()
            opt.step()
            times[key].append(time.perf_counter() - start)
    return {"matrices": len(matrices), "shape": list(matrices[0].shape), "times_s": times,
            "ours_s": statistics.median(times["ours"]), "torch_s": statistics.median(times["torch"])}


def case_curves(config: dict[str, Any]) -> dict[str, Any]:
    import torch
    from torch import nn

    import swift_zoo

    vocab, dim, steps = 64, 64, config["steps"]
    seq, batch = config.get("seq", 32), config.get("batch", 16)
    gen = torch.Generator().manual_seed(0)
    # a sparse random Markov chain: each token has 4 likely successors
    logits = torch.full((vocab, vocab), -4.0)
    for token in range(vocab):
        logits[token, torch.randperm(vocab, generator=gen)[:4]] = 2.0
    transition = logits.softmax(-1)

    def batch_at(step: int) -> Any:
        g = torch.Generator().manual_seed(1000 + step)
        ids = torch.empty(batch, seq + 1, dtype=torch.long)
        ids[:, 0] = torch.randint(0, vocab, (batch,), generator=g)
        for t in range(seq):
            ids[:, t + 1] = torch.multinomial(transition[ids[:, t]], 1, generator=g).squeeze(1)
        return ids

    data = [batch_at(s) for s in range(steps)]
    entropy = float(-(transition * transition.log()).sum(-1).mean())
    curves, errors = {}, {}
    for name in config["optimizers"]:
        torch.manual_seed(0)
        model = build_tiny_lm(vocab, dim, heads=4)
        try:
            opt = swift_zoo.build_optimizer(name, model, **CURVE_KWARGS.get(name, {"lr": 3e-3}))
        except Exception as exc:  # a third-party optimizer with other kwargs: report it
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        if hasattr(opt, "train") and "train" in getattr(swift_zoo.REGISTRY.resolve("optimizer", name).spec, "hooks", ()):
            opt.train()
        losses = []
        for ids in data:
            loss = nn.functional.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss))
        curves[name] = losses
    result = {"curves": curves, "errors": errors, "entropy": entropy, "steps": steps, "batch": batch, "seq": seq}
    if not config.get("quick"):
        CURVES_DUMP.write_text(json.dumps(result))  # for --replot
    return result


def case_peers(config: dict[str, Any]) -> dict[str, Any]:
    """Our implementation of one method beside every installed peer's (``_peers.PEERS``) and fused AdamW, on
    the same parameters in one process, steps interleaved in a rotating order; medians; state bytes."""
    import _peers
    import torch

    import swift_zoo

    method, shape = config["method"], config["shape"]
    torch.manual_seed(0)
    model = build_bench_model(shape["vocab"], shape["hidden"], shape["blocks"])
    params = list(model.parameters())
    matrices = [block.weight for block in model.blocks]
    gen = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    grads = [p.grad for p in params]

    def restore_grads() -> None:  # some peers (heavyball) drop p.grad after their step
        for p, g in zip(params, grads):
            p.grad = g

    name, kwargs, matrices_only = _peers.OURS[method]
    if matrices_only:
        ours = swift_zoo.REGISTRY.load("optimizer", name)(matrices, **kwargs)
    else:
        ours = swift_zoo.build_optimizer(name, model, **kwargs)
    shown = {k: v for k, v in kwargs.items() if k in ("fused", "rank")}
    rows: dict[str, dict[str, Any]] = {"ours": {"label": f"swift_optim_zoo {name} {shown or ''}".strip(),
                                                "version": _peers.version("swift-optim-zoo"), "opt": ours}}
    for label, distribution, factory in _peers.PEERS.get(method, []):
        try:
            rows[label] = {"label": label, "version": _peers.version(distribution),
                           "opt": factory(model, matrices, params)}
        except Exception as exc:  # not installed, or does not run here: a row saying why
            rows[label] = {"label": label, "version": _peers.version(distribution),
                           "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"}
    baseline = torch.optim.AdamW(params, lr=1e-3, fused=True)
    rows["fused AdamW"] = {"label": "torch.optim.AdamW(fused=True)", "version": torch.__version__, "opt": baseline}
    for row in rows.values():
        opt = row.get("opt")
        if opt is not None and hasattr(opt, "train"):
            opt.train()  # schedule-free: training mode (a no-op elsewhere)
    live = [k for k, r in rows.items() if "opt" in r]
    for key in live:  # first step: state allocation, projections, compilation (heavyball compiles its step)
        restore_grads()
        start = time.perf_counter()
        try:
            rows[key]["opt"].step()
        except Exception as exc:
            rows[key]["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
            rows[key].pop("opt")
            continue
        rows[key]["first_s"] = time.perf_counter() - start
    live = [k for k in live if "opt" in rows[k]]
    for key in live:
        rows[key]["times"] = []
    for round_index in range(config["rounds"]):
        shift = round_index % len(live)
        for key in live[shift:] + live[:shift]:
            restore_grads()
            start = time.perf_counter()
            rows[key]["opt"].step()
            rows[key]["times"].append(time.perf_counter() - start)
    out = []
    for key, row in rows.items():
        entry = {"key": key, "label": row["label"], "version": row["version"]}
        if "opt" in row:
            entry.update(first_s=row["first_s"], step_s=statistics.median(row["times"]), times_s=row["times"],
                         state_bytes=_storage_bytes(dict(row["opt"].state), set()))
        else:
            entry["error"] = row["error"]
        out.append(entry)
    return {"method": method, "rows": out, "acted_on": "hidden matrices" if matrices_only else "whole model"}


CASES = {"step": case_step, "muon_vs_torch": case_muon_vs_torch, "curves": case_curves, "peers": case_peers}


# ------------------------------------------------------------------ parent
def _call(config: dict[str, Any], *, in_process: bool) -> dict[str, Any]:
    if in_process:
        return CASES[config["case"]](config)
    return run_worker(__file__, config, timeout=3600)


def _plot(curves: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    window = 10
    colors = plt.get_cmap("tab20").colors
    styles = ("-", "--", "-.", ":")
    for i, (name, losses) in enumerate(sorted(curves["curves"].items())):
        smooth = [statistics.fmean(losses[max(0, i - window + 1): i + 1]) for i in range(len(losses))]
        ax.plot(range(1, len(smooth) + 1), smooth, label=name, linewidth=1.5, color=colors[(2 * i + i // 10) % 20],
                linestyle=styles[i % len(styles)])
    ax.axhline(curves["entropy"], color="black", linestyle=":", linewidth=1, label="data entropy (floor)")
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (mean of last {window} steps)")
    ax.set_title("Tiny causal LM on Markov-chain tokens: every registered optimizer, same data")
    ax.set_yscale("log")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _variant(result: dict[str, Any]) -> str:
    kwargs = {k: v for k, v in result["kwargs"].items() if k != "rank"}
    return ", " + ", ".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else ""


def _fmt_ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


PEERS_INTRO = (
    "Per method, one process: ours, every installed peer (`benchmarks/_peers.py`; `nox -s benchmarks_peers` "
    "installs them) and torch.optim.AdamW(fused=True) on the same parameters, steps interleaved in a rotating "
    "order, medians; ratios from the same process. 'step 1' includes state allocation, projections and any "
    "compilation. State = bytes of the optimizer's state tensors. Each method's section is rewritten by "
    "`python benchmarks/bench_optimizers.py --peers --only NAME`."
)


def _peers_report(args: Any, names: list[str], shape: dict[str, Any], shape_cfg: dict[str, Any], out: Path) -> None:
    """Every method of ``_peers.OURS`` (within ``--only``) against the installed peers: one section of
    ``optimizer_peers.md`` per method, written as soon as the method is done."""
    import subprocess

    import _peers
    from _measure import write_section

    path = out / "optimizer_peers.md"
    out.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("# Optimizers against other libraries\n\n" + PEERS_INTRO + "\n")
    header = ["implementation", "version", "step 1 (s)", "steady step (s)", "vs fused AdamW", "vs ours",
              "state MiB (vs AdamW)", "acts on / notes"]
    for method in [m for m in _peers.OURS if m in names or not args.only]:
        rounds = shape["slow_rounds"] if method in SLOW else shape["rounds"]
        load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.split("load average:")[-1]
        print(f"peers: {method} ...", flush=True)
        table = []
        try:
            result = _call({"case": "peers", "method": method, "shape": shape_cfg, "rounds": rounds},
                           in_process=args.quick)
        except Exception as exc:  # one method's failure must not hide the others
            result = {"rows": [], "acted_on": ""}
            table.append(["failed", "", "", "", "", "", "", str(exc).splitlines()[0][:160]])
        rows = {r["key"]: r for r in result["rows"]}
        base, ours = rows.get("fused AdamW"), rows.get("ours", {})
        for row in result["rows"]:
            if row["key"] == "fused AdamW":
                continue
            if "error" in row:
                table.append([row["label"], row["version"], "", "", "", "", "", f"skipped: {row['error']}"])
                continue
            table.append([("**ours** " if row["key"] == "ours" else "") + row["label"], row["version"],
                          f"{row['first_s']:.2f}", f"{row['step_s']:.3f}", _fmt_ratio(row["step_s"] / base["step_s"]),
                          _fmt_ratio(row["step_s"] / ours["step_s"]) if "step_s" in ours else "-",
                          f"{row['state_bytes'] / MIB:,.1f} ({row['state_bytes'] / base['state_bytes']:.3f}x)",
                          result["acted_on"]])
        if base is not None and "step_s" in base:
            table.append(["torch.optim.AdamW(fused=True)", base["version"], f"{base['first_s']:.2f}",
                          f"{base['step_s']:.3f}", "1.00x",
                          _fmt_ratio(base["step_s"] / ours["step_s"]) if "step_s" in ours else "-",
                          f"{base['state_bytes'] / MIB:,.1f}", "whole model"])
        text = (report_header(f"{method}: ours and other implementations") +
                f"\nModel as in optimizers.md ({shape['blocks']} Linear {shape['hidden']}x{shape['hidden']} blocks, "
                f"embedding and head of vocab {shape['vocab']}), random gradients, {rounds} interleaved rounds; load "
                f"average before: {load.strip()}.\n\n" + markdown_table(header, table) + "\n")
        write_section(path, f"peers_{method}", text)
        print(text, flush=True)
    print(f"written: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, in-process, results to a temp dir")
    parser.add_argument("--only", nargs="*", help="optimizer names to run (default: every registered one)")
    parser.add_argument("--out", type=Path, help="results folder (default: benchmarks/results; temp with --quick)")
    parser.add_argument("--peers", action="store_true",
                        help="only compare each method with other libraries' implementations (benchmarks/_peers.py; "
                             "installed by `nox -s benchmarks_peers`) -> results/optimizer_peers.md")
    parser.add_argument("--replot", type=Path, help=f"only redraw the curves from a JSON dump (e.g. {CURVES_DUMP})")
    args = parser.parse_args()
    if args.replot:
        target = (args.out or RESULTS) / "optimizer_curves.png"
        _plot(json.loads(args.replot.read_text()), target)
        print(f"written: {target}")
        return
    import swift_zoo

    names = sorted(args.only or [e.name for e in swift_zoo.list_optimizers()])
    shape = QUICK if args.quick else FULL
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench_optimizers_")) if args.quick else RESULTS)
    shape_cfg = {k: shape[k] for k in ("vocab", "hidden", "blocks")}
    if args.peers or args.quick:
        _peers_report(args, names, shape, shape_cfg, out)
        if args.peers:
            return

    rows = []
    results: dict[str, dict[str, Any]] = {}  # first (default) variant per optimizer: the state goals
    variants: dict[str, list[dict[str, Any]]] = {}  # every variant per optimizer: the step goal
    for name in names:
        rounds = shape["slow_rounds"] if name in SLOW else shape["rounds"]
        for kwargs in STEP_VARIANTS.get(name, [{}]):
            label = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
            print(f"step/state: {name} ({label}) ...", flush=True)
            try:
                result = _call({"case": "step", "optimizer": name, "shape": shape_cfg, "rounds": rounds,
                                "kwargs": kwargs}, in_process=args.quick)
            except Exception as exc:  # one broken optimizer must not hide the others
                print(f"  failed: {exc}", flush=True)
                rows.append([f"`{name}`", "failed", "", "", "", "", "", "", "", str(exc).splitlines()[0][:120]])
                continue
            results.setdefault(name, result)
            variants.setdefault(name, []).append(result)
            state_ratio = result["state_bytes"] / result["adamw_state_bytes"]
            targeted = (result["targeted_state_bytes"] / result["targeted_adamw_bytes"]
                        if result["targeted_adamw_bytes"] else float("nan"))
            result["state_ratio"] = state_ratio
            result["targeted_ratio"] = targeted
            result["vs_fused"] = result["step_s"] / result["fused_s"]
            result["vs_foreach"] = result["step_s"] / result["foreach_s"]
            rest = max(result["profiled_step_s"] - result["method_kernels_s"], 0.0)
            result["rest_vs_fused"] = rest / result["fused_s"]
            share = result["targeted_params"] / result["num_params"]
            method = (f"{result['method_kernels_s']:.3f} ({_fmt_ratio(result['rest_vs_fused'])})"
                      if result["method_kernels_s"] >= 0.001 else "-")
            rows.append([
                f"`{name}`",
                label,
                f"{result['first_step_s']:.3f}",
                f"{result['step_s']:.3f}",
                _fmt_ratio(result["vs_fused"]),
                _fmt_ratio(result["vs_foreach"]),
                method,
                f"{result['state_bytes'] / MIB:,.1f}",
                f"{state_ratio:.1%}",
                f"{targeted:.1%} ({share:.0%} of params)",
            ])
            print(f"  step {result['step_s']:.3f}s (fused AdamW {result['fused_s']:.3f}s, method kernels "
                  f"{result['method_kernels_s']:.3f}s), state {state_ratio:.1%}", flush=True)

    print("muon vs torch.optim.Muon ...", flush=True)
    muon_cmp = None
    if hasattr(__import__("torch").optim, "Muon") and ("muon" in names):
        muon_cmp = _call({"case": "muon_vs_torch", "shape": shape_cfg, "rounds": shape["slow_rounds"]},
                         in_process=args.quick)
    print("loss curves ...", flush=True)
    curves = _call({"case": "curves", "optimizers": names, "steps": shape["curve_steps"],
                    "batch": shape["curve_batch"], "seq": shape["curve_seq"], "quick": args.quick},
                   in_process=args.quick)
    _plot(curves, out / "optimizer_curves.png")

    adamw = results.get("adamw", next(iter(results.values()), {}))
    lines = [report_header("Optimizers: step time, state, loss curves"), ""]
    if adamw:
        lines.append(
            f"Model: embedding {shape['vocab']}x{shape['hidden']}, {shape['blocks']} Linear "
            f"{shape['hidden']}x{shape['hidden']} blocks (no bias) each behind an RMSNorm, final RMSNorm, untied head: "
            f"{adamw['num_params'] / 1e6:.1f} M parameters (fp32), fixed random gradients. Baselines on the same "
            f"parameters, interleaved: torch.optim.AdamW fused {adamw['fused_s']:.3f} s/step, foreach "
            f"{adamw['foreach_s']:.3f} s/step (medians; AdamW state {adamw['adamw_state_bytes'] / MIB:,.0f} MiB).\n")
    lines.append(markdown_table(
        ["optimizer", "kwargs", "step 1 (s)", "steady step (s)", "vs AdamW fused", "vs AdamW foreach",
         "method kernels (s) (rest vs AdamW fused)", "state (MiB)", "state vs AdamW",
         "on targeted params vs AdamW"], rows))
    lines.append("\n'step 1' allocates the state and runs the first projection / eigenbasis computation (GaLore, "
                 "APOLLO: every `update_proj_gap`; SOAP: `eigh` at step 1, a QR refresh every "
                 "`precondition_frequency` steps, included in the steady median only if it falls in a timed round). "
                 "'targeted' = the parameters of the roles the optimizer's spec says it acts on; the rest go through "
                 "an inner AdamW at AdamW's cost. 'method kernels' = seconds per step in the method's dense linear "
                 "algebra (matmuls, QR, eigh, SVD: GaLore/APOLLO projections, Newton-Schulz, SOAP's "
                 "preconditioners; torch.profiler self time over two extra steps); in brackets the rest of those "
                 "profiled steps relative to fused AdamW.\n")
    lines.append("### Goals\n")
    goal_rows = []
    for name, limit, text in GOALS:
        if name not in results:
            goal_rows.append([text, "not registered / failed", "", ""])
            continue
        r = results[name]
        whole, targ = r["state_ratio"], r["targeted_ratio"]
        verdict = "met" if whole <= limit else (
            "met on the hidden 2048x2048 matrices, as the goal is stated; not on the whole model" if targ <= limit
            else "not met")
        goal_rows.append([text, f"{whole:.1%}", f"{targ:.1%}", verdict])
    direct, method_bound, slow, reported, own_goals = [], [], [], [], []
    for name, runs in sorted(variants.items()):
        if runs[0]["distribution"] != "swift-optim-zoo":
            continue  # a third-party plugin (examples/my-swift-loss): in the table, not in the catalogue's goals
        if name in METHOD_COST:
            best = min(runs, key=lambda r: r["vs_fused"])
            reported.append(f"{name} ({_fmt_ratio(best['vs_fused'])}: {METHOD_COST[name]})")
            continue
        best = min(runs, key=lambda r: r["vs_fused"])
        if name in OWN_STEP_GOALS:
            limit = OWN_STEP_GOALS[name]
            own_goals.append([f"{name} steady step <= {limit}x fused AdamW", "", "",
                              f"{'met' if best['vs_fused'] <= limit else 'not met'}: "
                              f"{_fmt_ratio(best['vs_fused'])}{_variant(best)}"])
            continue
        if best["vs_fused"] <= STEP_GOAL:
            direct.append(f"{name} ({_fmt_ratio(best['vs_fused'])}{_variant(best)})")
            continue
        leanest = min(runs, key=lambda r: r["rest_vs_fused"])
        if leanest["method_kernels_s"] >= 0.001 and leanest["rest_vs_fused"] <= STEP_GOAL:
            method_bound.append(f"{name} ({_fmt_ratio(leanest['vs_fused'])}; without its linear algebra "
                                f"{_fmt_ratio(leanest['rest_vs_fused'])}{_variant(leanest)})")
        else:
            slow.append(f"{name} ({_fmt_ratio(best['vs_fused'])}{_variant(best)})")
    goal_rows.append([f"steady step <= {STEP_GOAL}x fused AdamW", "", "", "met by: " + (", ".join(direct) or "none")])
    goal_rows.append(["... except where the method costs more (its dense linear algebra)", "", "",
                      "within the goal once that is taken out: " + (", ".join(method_bound) or "none")])
    goal_rows.append(["... the methods the issue names as costing more", "", "", ", ".join(reported) or "none"])
    goal_rows.append(["... exceeded", "", "", ", ".join(slow) or "none"])
    goal_rows.extend(own_goals)
    lines.append(markdown_table(["goal", "whole model", "targeted params", "verdict"], goal_rows))
    if muon_cmp is not None:
        ratio = muon_cmp["ours_s"] / muon_cmp["torch_s"]
        lines.append(f"\n### Muon vs torch.optim.Muon\n\nSame {muon_cmp['matrices']} matrices "
                     f"{muon_cmp['shape'][0]}x{muon_cmp['shape'][1]}, lr 0.02, momentum 0.95, Nesterov, "
                     f"adjust 'original', bf16 Newton-Schulz (5 steps), interleaved rounds: ours "
                     f"{muon_cmp['ours_s']:.3f} s/step, torch {muon_cmp['torch_s']:.3f} s/step "
                     f"(ratio {ratio:.2f}; per-round ours {[round(t, 3) for t in muon_cmp['times_s']['ours']]}, "
                     f"torch {[round(t, 3) for t in muon_cmp['times_s']['torch']]}). The updates agree to 1e-6 "
                     "(swift-optim-zoo/tests/test_muon.py::test_matches_torch_muon_on_matrices).\n")
    lines.append("\n" + NOTES)
    final = {n: c[-1] for n, c in curves["curves"].items()}
    best = {n: min(statistics.fmean(c[max(0, i - 9): i + 1]) for i in range(len(c))) for n, c in curves["curves"].items()}
    lines.append(f"\n### Loss curves\n\n![loss curves](optimizer_curves.png)\n\nTiny causal LM (vocab 64, dim 64, "
                 f"one attention + MLP block), {curves['steps']} steps of batch {curves.get('batch', 16)} x "
                 f"{curves.get('seq', 32)} tokens from a sparse Markov "
                 f"chain (entropy floor {curves['entropy']:.3f} nats), grad-norm clip 1.0, the same data order for "
                 "every optimizer; one reasonable lr each, not tuned (see `CURVE_KWARGS`); schedule-free loss at y.\n")
    lines.append(markdown_table(["optimizer", "final loss", "best 10-step mean"],
                                [[f"`{n}`", f"{final[n]:.3f}", f"{best[n]:.3f}"] for n in sorted(final)]))
    if curves["errors"]:
        lines.append("\nNot on the curves: " + "; ".join(f"`{n}`: {e}" for n, e in curves["errors"].items()))
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "optimizers.md").write_text("# Optimizer benchmarks\n\n" + text)
    print(text)
    print(f"written: {out / 'optimizers.md'}, {out / 'optimizer_curves.png'}")
    if math.isnan(sum(r["state_ratio"] for r in results.values())):
        raise SystemExit("a state ratio is NaN")


if __name__ == "__main__":
    if not worker_main(CASES):
        main()
