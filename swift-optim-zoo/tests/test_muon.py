"""Muon: update rule vs a float64 re-computation, torch.optim.Muon equivalence, routing, state."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.muon import Muon, newton_schulz_orthogonalize, newton_schulz_orthogonalize_batch
from swift_optim_zoo.muon.newton_schulz import batches_by_shape
from swift_zoo.optim import declared_state_bytes, measure_state_bytes

COEFFS = (3.4445, -4.7750, 2.0315)


def reference_ns(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Newton–Schulz in float64 written from the formula: X <- aX + b(XX^T)X + c(XX^T)^2 X."""
    a, b, c = COEFFS
    x = g.double()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.t()
    x = x / max(float(torch.sqrt((x * x).sum())), 1e-7)
    for _ in range(steps):
        gram = x @ x.t()
        x = a * x + b * (gram @ x) + c * (gram @ (gram @ x))
    return x.t() if tall else x


def reference_muon(weights, grads_per_step, *, lr, momentum, wd, adjust):
    """Float64 Muon: B = mu B + (1 - mu) G; U = (1 - mu) G + mu B; W = W(1 - lr wd) - lr s NS(U)."""
    weights = [w.double().clone() for w in weights]
    buffers = [torch.zeros_like(w) for w in weights]
    for grads in grads_per_step:
        for i, g in enumerate(grads):
            g = g.double()
            buffers[i] = momentum * buffers[i] + (1 - momentum) * g
            u = (1 - momentum) * g + momentum * buffers[i]
            rows, cols = weights[i].shape
            scale = math.sqrt(max(1, rows / cols)) if adjust == "original" else 0.2 * math.sqrt(max(rows, cols))
            weights[i] = weights[i] * (1 - lr * wd) - lr * scale * reference_ns(u)
    return weights


@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("seed", [0, 1])
def test_update_matches_float64_reference(adjust: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(12, 7), (7, 12), (9, 9), (12, 7), (9, 9)]  # repeated shapes: batched iterations
    weights = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    steps = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(4)]
    params = [nn.Parameter(w.clone()) for w in weights]
    opt = Muon(params, lr=0.05, momentum=0.9, weight_decay=0.1, adjust_lr_fn=adjust, ns_dtype="float64")
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    expected = reference_muon(weights, steps, lr=0.05, momentum=0.9, wd=0.1, adjust=adjust)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon not in this torch")
@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
def test_matches_torch_muon_on_matrices(adjust: str) -> None:
    gen = torch.Generator().manual_seed(3)
    shapes = [(24, 16), (16, 24), (20, 20), (24, 16), (20, 20)]
    ours = [nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    a = Muon(ours, lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
    b = torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust)
    for _ in range(4):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_newton_schulz_singular_values_in_band_and_bf16() -> None:
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(64, 32, generator=gen)
    out = newton_schulz_orthogonalize(g)
    assert out.dtype == torch.bfloat16 and out.shape == (64, 32)
    s = torch.linalg.svdvals(out.float())
    assert 0.5 < float(s.min()) and float(s.max()) < 1.3, s


def one_at_a_time_ns(g: torch.Tensor, dtype: torch.dtype, steps: int = 5) -> torch.Tensor:
    """The unbatched iteration as torch.optim.Muon writes it (mm / addmm on one matrix)."""
    a, b, c = COEFFS
    x = g.to(dtype)
    tall = x.shape[0] > x.shape[1]
    x = x.t() if tall else x
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.t()
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.t() if tall else x


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("shape", [(24, 16), (16, 24), (20, 20)])
def test_batched_newton_schulz_equals_one_matrix_at_a_time(shape: tuple[int, int], dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(4)
    matrices = [torch.randn(shape, generator=gen) * scale for scale in (1e-3, 1.0, 30.0)]
    stack = torch.randn(2, *shape, generator=gen)
    out = newton_schulz_orthogonalize_batch([*matrices, stack], dtype=dtype)
    expected = [one_at_a_time_ns(m, dtype) for m in matrices] + [torch.stack([one_at_a_time_ns(m, dtype) for m in stack])]
    tol = {"rtol": 0, "atol": 0} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-6}
    for got, want in zip(out, expected):
        assert got.shape == want.shape and got.dtype == dtype
        torch.testing.assert_close(got, want, **tol)


def test_batched_newton_schulz_matches_float64_formula_and_rejects_mixed_shapes() -> None:
    gen = torch.Generator().manual_seed(5)
    matrices = [torch.randn(9, 5, generator=gen, dtype=torch.float64) for _ in range(3)]
    for got, m in zip(newton_schulz_orthogonalize_batch(matrices, dtype=torch.float64), matrices):
        torch.testing.assert_close(got, reference_ns(m), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"one \[A, B\], got \[\(9, 5\), \(5, 9\)\]"):
        newton_schulz_orthogonalize_batch([matrices[0], matrices[1].t()])


def test_batches_by_shape_groups_equal_shapes_under_the_byte_cap() -> None:
    shapes = [(4, 4), (4, 8), (4, 4), (2, 4, 4), (4, 8), (4, 4)]
    assert batches_by_shape(shapes, itemsize=2) == [[0, 2, 3, 5], [1, 4]]
    # 16 elements of 2 bytes per matrix, a cap of 64 bytes: two [4, 4] matrices (or one stack of two) per batch
    assert batches_by_shape(shapes, itemsize=2, max_batch_bytes=64) == [[0, 2], [3], [5], [1], [4]]


def test_match_rms_update_rms_is_about_point_two_lr() -> None:
    gen = torch.Generator().manual_seed(0)
    for shape in [(64, 32), (32, 128), (48, 48)]:
        p = nn.Parameter(torch.zeros(shape))
        opt = Muon([p], lr=1.0, adjust_lr_fn="match_rms_adamw", nesterov=False, momentum=0.0)
        p.grad = torch.randn(shape, generator=gen)
        opt.step()
        rms = float(p.detach().pow(2).mean().sqrt())
        assert 0.15 < rms < 0.21, (shape, rms)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.conv = nn.Conv1d(8, 6, kernel_size=3, padding=1)
        self.proj = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.lm_head = nn.Linear(8, 20, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.embed(ids).transpose(1, 2)).transpose(1, 2)
        return self.lm_head(self.norm(self.proj(h)))


def _train(opt: torch.optim.Optimizer, model: nn.Module, steps: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, 20, (2, 5), generator=gen)
        loss = nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_roles_route_matrices_to_muon_and_the_rest_to_adamw() -> None:
    torch.manual_seed(0)
    model = _Tiny()
    opt = swift_zoo.build_optimizer("muon", model, adamw_lr=1e-3, adamw_wd=0.05, weight_decay=0.1)
    muon_ids = {id(p) for g in opt.param_groups if g["use_muon"] for p in g["params"]}
    assert muon_ids == {id(model.conv.weight), id(model.proj.weight)}
    for group in opt.param_groups:
        if not group["use_muon"]:
            assert group["lr"] == 1e-3
            expected_wd = 0.0 if group["role"] in ("norm", "bias") else 0.05
            assert group["weight_decay"] == expected_wd, group["role"]
    # the AdamW half is exactly torch AdamW with the same groups
    twin = _Tiny()
    twin.load_state_dict(model.state_dict())
    _train(opt, model, 3)
    adamw_groups = [
        {"params": [dict(twin.named_parameters())[n] for n in g["param_names"]], "lr": g["lr"],
         "weight_decay": g["weight_decay"], "betas": g["betas"], "eps": g["eps"]}
        for g in opt.param_groups if not g["use_muon"]
    ]
    ref = torch.optim.AdamW(adamw_groups)
    twin_muon = Muon([{"params": [twin.conv.weight, twin.proj.weight], "use_muon": True}], weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        ids = torch.randint(0, 20, (2, 5), generator=gen)
        loss = nn.functional.cross_entropy(twin(ids).flatten(0, 1), ids.flatten())
        twin.zero_grad()
        loss.backward()
        ref.step()
        twin_muon.step()
    for name in ("embed.weight", "lm_head.weight", "norm.weight", "proj.bias", "conv.weight"):
        torch.testing.assert_close(dict(model.named_parameters())[name], dict(twin.named_parameters())[name])


def test_conv_is_flattened_and_expert_stack_orthogonalised_per_expert() -> None:
    gen = torch.Generator().manual_seed(0)
    conv = nn.Parameter(torch.zeros(6, 4, 3))
    experts = nn.Parameter(torch.zeros(3, 8, 5))
    opt = Muon([{"params": [conv], "role": "hidden_matrix"}, {"params": [experts], "role": "expert_stack"}],
               lr=1.0, momentum=0.0, nesterov=False, ns_dtype="float64")
    conv.grad = torch.randn(conv.shape, generator=gen)
    experts.grad = torch.randn(experts.shape, generator=gen)
    opt.step()
    expected_conv = -math.sqrt(max(1, 6 / 12)) * reference_ns(conv.grad.reshape(6, 12)).reshape(6, 4, 3)
    torch.testing.assert_close(conv.detach().double(), expected_conv, rtol=1e-5, atol=1e-6)
    for e in range(3):
        expected = -math.sqrt(8 / 5) * reference_ns(experts.grad[e])
        torch.testing.assert_close(experts.detach()[e].double(), expected, rtol=1e-5, atol=1e-6)


def test_state_dict_weights_only_roundtrip_continues_identically() -> None:
    torch.manual_seed(0)
    model = _Tiny()
    opt = swift_zoo.build_optimizer("muon", model, adamw_lr=1e-3)
    _train(opt, model, 3)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    twin = _Tiny()
    twin.load_state_dict(model.state_dict())
    opt2 = swift_zoo.build_optimizer("muon", twin, adamw_lr=1e-3)
    buffer.seek(0)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    _train(opt, model, 3, seed=1)
    _train(opt2, twin, 3, seed=1)
    for (n, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), n


def test_no_state_for_gradless_params_bf16_stays_bf16_and_state_bytes() -> None:
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(16, 8, dtype=torch.bfloat16))
    frozen = nn.Parameter(torch.randn(16, 8, dtype=torch.bfloat16))
    bias = nn.Parameter(torch.randn(16, dtype=torch.bfloat16))
    opt = Muon([a, frozen, bias])
    before = frozen.detach().clone()
    a.grad = torch.randn_like(a)
    bias.grad = torch.randn_like(bias)
    opt.step()
    assert frozen not in opt.state and torch.equal(frozen, before)
    assert a.dtype == torch.bfloat16 and bias.dtype == torch.bfloat16
    assert opt.state[a]["momentum_buffer"].dtype == torch.bfloat16
    assert measure_state_bytes(opt) <= declared_state_bytes(opt)
    assert declared_state_bytes(opt) == 16 * 8 * 2 + (2 * 16 * 2 + 4)


def test_invalid_adjust_lr_names_expected_and_found() -> None:
    with pytest.raises(swift_zoo.ConfigError, match="original.*match_rms_adamw.*got 'rms'"):
        Muon([nn.Parameter(torch.zeros(2, 2))], adjust_lr_fn="rms")
    with pytest.raises(swift_zoo.ConfigError, match=r"optimizer 'muon': momentum must be in \[0.0, 1.0\), got 1.5"):
        Muon([nn.Parameter(torch.zeros(2, 2))], momentum=1.5)


@pytest.mark.parametrize("shape", [(16, 16), (16, 32), (32, 16), (48, 48)])
def test_a_matrix_orthogonalises_alike_in_any_stack(shape: tuple[int, int]) -> None:
    """One process stacks q/k/v/o together, an FSDP2 owner rank orthogonalises the ones it owns: each matrix's bf16
    result must not depend on its stack (a bf16 bmm over a stack once rounded 16x16 matrices differently)."""
    gen = torch.Generator().manual_seed(0)
    matrices = [torch.randn(*shape, generator=gen) for _ in range(600)]
    stacked = newton_schulz_orthogonalize_batch(matrices)
    pairs = newton_schulz_orthogonalize_batch(matrices[:2])
    differ = [i for i, m in enumerate(matrices) if not torch.equal(stacked[i], newton_schulz_orthogonalize(m))]
    assert not differ, f"expected each matrix's result alone to equal its result in the stack, found {len(differ)} differ"
    assert all(torch.equal(a, b) for a, b in zip(pairs, stacked[:2]))
