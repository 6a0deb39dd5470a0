"""Lion: update rule vs a float64 re-computation, foreach == for-loop, state contract."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.lion import Lion
from swift_zoo.optim import declared_state_bytes, measure_state_bytes


def reference_lion(weight, grads, *, lr, beta1, beta2, wd):
    """Float64 Lion, element by element: c = b1 m + (1-b1) g; w -= lr (sign(c) + wd w); m = b2 m + (1-b2) g."""
    w = weight.double().clone().flatten()
    m = torch.zeros_like(w)
    for g in grads:
        g = g.double().flatten()
        for i in range(w.numel()):
            c = beta1 * float(m[i]) + (1 - beta1) * float(g[i])
            sign = (c > 0) - (c < 0)
            w[i] = float(w[i]) * (1 - lr * wd) - lr * sign
            m[i] = beta2 * float(m[i]) + (1 - beta2) * float(g[i])
    return w.view(weight.shape)


@pytest.mark.parametrize("mode", ["foreach", "loop", "fused"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_update_matches_float64_reference(mode: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(5)]
    p = nn.Parameter(weight.clone())
    opt = Lion([p], lr=0.01, betas=(0.8, 0.95), weight_decay=0.3, foreach=mode == "foreach", fused=mode == "fused")
    for g in grads:
        p.grad = g.clone()
        opt.step()
    expected = reference_lion(weight, grads, lr=0.01, beta1=0.8, beta2=0.95, wd=0.3)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12)


def test_foreach_equals_single_tensor_on_mixed_groups() -> None:
    gen = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (7,), (2, 2, 2)]
    a = [nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    opt_a = Lion([{"params": a[:2]}, {"params": a[2:], "weight_decay": 0.0}], lr=0.1, weight_decay=0.5, foreach=True)
    opt_b = Lion([{"params": b[:2]}, {"params": b[2:], "weight_decay": 0.0}], lr=0.1, weight_decay=0.5, foreach=False)
    for _ in range(4):
        for p, q in zip(a, b):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_gradients_are_not_mutated_and_gradless_params_get_no_state() -> None:
    p, frozen = nn.Parameter(torch.ones(4)), nn.Parameter(torch.ones(4))
    opt = Lion([p, frozen], lr=0.1)
    p.grad = torch.tensor([1.0, -2.0, 0.0, 3.0])
    grad_before = p.grad.clone()
    opt.step()
    assert torch.equal(p.grad, grad_before)
    assert frozen not in opt.state and torch.equal(frozen, torch.ones(4))
    torch.testing.assert_close(p.detach(), torch.tensor([0.9, 1.1, 1.0, 0.9]))


def test_state_dict_weights_only_roundtrip_and_bf16() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 3)).to(torch.bfloat16)
    opt = swift_zoo.build_optimizer("lion", model, lr=1e-2, weight_decay=0.1)
    assert [g["weight_decay"] for g in opt.param_groups if g["role"] in ("norm", "bias")] == [0.0, 0.0]
    x = torch.randn(4, 6, dtype=torch.bfloat16)

    def train(o: torch.optim.Optimizer, m: nn.Module, n: int) -> None:
        for _ in range(n):
            o.zero_grad()
            m(x).float().square().mean().backward()
            o.step()

    train(opt, model, 3)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(s["exp_avg"].dtype == torch.bfloat16 for s in opt.state.values())
    assert measure_state_bytes(opt) <= declared_state_bytes(opt)
    assert declared_state_bytes(opt) == sum(p.numel() * 2 for p in model.parameters())
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    twin = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 3)).to(torch.bfloat16)
    twin.load_state_dict(model.state_dict())
    opt2 = swift_zoo.build_optimizer("lion", twin, lr=1e-2, weight_decay=0.1)
    buffer.seek(0)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    train(opt, model, 3)
    train(opt2, twin, 3)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_invalid_betas_message() -> None:
    with pytest.raises(swift_zoo.ConfigError, match=r"optimizer 'lion': betas\[1\] must be in \[0.0, 1.0\], got 1.5"):
        Lion([nn.Parameter(torch.zeros(2))], betas=(0.9, 1.5))
