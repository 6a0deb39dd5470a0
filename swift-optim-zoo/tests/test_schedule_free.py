"""Schedule-Free AdamW: the x/y/z sequences vs float64, train/eval modes, state contract."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.schedule_free import ScheduleFreeAdamW
from swift_zoo.optim import declared_state_bytes, measure_state_bytes


def reference_sequences(p0, grad_fn, steps, *, lr, beta1, beta2, eps, wd, warmup, r=0.0, power=2.0,
                        step_size_correction=False):
    """Float64 schedule-free AdamW with x and z kept explicitly; returns (y, x) after ``steps``.

    y_t = (1-b1) z_t + b1 x_t; g = grad(y_t); v = b2 v + (1-b2) g^2; bc_t = 1 - b2^t;
    gamma_t = lr min(1, t/warmup); c_t = w_t / sum w, w_t = t^r max(gamma)^power;
    z_{t+1} = z_t - gamma_t (g / (sqrt(v / bc_t) + eps) + wd y_t); x_{t+1} = (1 - c_t) x_t + c_t z_{t+1}.
    With ``step_size_correction`` (schedulefree <= 1.2): gamma_t carries sqrt(bc_t) and the denominator is
    sqrt(v) + eps.
    """
    x = p0.double().clone()
    z = x.clone()
    v = torch.zeros_like(x)
    weight_sum, gamma_max = 0.0, -1.0
    for t in range(1, steps + 1):
        y = (1 - beta1) * z + beta1 * x
        g = grad_fn(t, y)
        v = beta2 * v + (1 - beta2) * g * g
        bc = 1 - beta2**t
        gamma = lr * (t / warmup if t <= warmup else 1.0)
        if step_size_correction:
            gamma, bc = gamma * math.sqrt(bc), 1.0
        gamma_max = max(gamma_max, gamma)
        w = t**r * gamma_max**power
        weight_sum += w
        c = w / weight_sum
        z = z - gamma * (g / ((v / bc).sqrt() + eps) + wd * y)
        x = (1 - c) * x + c * z
    return (1 - beta1) * z + beta1 * x, x


def _grad(t: int, y: torch.Tensor) -> torch.Tensor:
    """A deterministic gradient that depends on the point: of 0.5 * ||y - target_t||^2."""
    gen = torch.Generator().manual_seed(100 + t)
    return y - torch.randn(y.shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("correction", ["denominator", "step_size"])
@pytest.mark.parametrize("mode", ["loop", "foreach", "fused"])
@pytest.mark.parametrize(("warmup", "wd", "r"), [(0, 0.0, 0.0), (3, 0.1, 0.0), (2, 0.05, 1.0)])
def test_sequences_match_float64_reference(warmup: int, wd: float, r: float, mode: str, correction: str) -> None:
    gen = torch.Generator().manual_seed(warmup)
    p0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    p = nn.Parameter(p0.clone())
    opt = ScheduleFreeAdamW([p], lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd, warmup_steps=warmup, r=r,
                            foreach=mode == "foreach", fused=mode == "fused", bias_correction=correction)
    for t in range(1, 7):
        p.grad = _grad(t, p.detach())
        opt.step()
    y, x = reference_sequences(p0, _grad, 6, lr=0.05, beta1=0.9, beta2=0.99, eps=1e-8, wd=wd, warmup=warmup, r=r,
                               step_size_correction=correction == "step_size")
    torch.testing.assert_close(p.detach(), y, rtol=1e-10, atol=1e-12)
    opt.eval()
    torch.testing.assert_close(p.detach(), x, rtol=1e-10, atol=1e-12)
    opt.train()
    torch.testing.assert_close(p.detach(), y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("correction", "ys", "x"), [
    ("denominator", [0.1, 0.152035, 0.20317], 0.193859),  # schedulefree 1.4.1 (the issue's repro)
    ("step_size", [0.1, 0.166216, 0.23058], 0.224438),  # schedulefree <= 1.2
])
def test_scalar_repro_of_the_issue(correction: str, ys: list[float], x: float) -> None:
    """f(w) = (w - 1)^2, lr 0.1, no warmup, 3 steps from w = 0: the y after each step and the eval-mode x."""
    w = nn.Parameter(torch.zeros((), dtype=torch.float64))
    opt = ScheduleFreeAdamW([w], lr=0.1, bias_correction=correction)
    seen = []
    for _ in range(3):
        w.grad = 2 * (w.detach() - 1)
        opt.step()
        seen.append(w.item())
    assert seen == pytest.approx(ys, abs=5e-6)
    opt.eval()
    assert w.item() == pytest.approx(x, abs=5e-6)


def test_unknown_bias_correction_is_refused() -> None:
    with pytest.raises(swift_zoo.ConfigError, match=r"bias_correction must be one of 'denominator', 'step_size', got 'v1.2'"):
        ScheduleFreeAdamW([nn.Parameter(torch.zeros(2))], bias_correction="v1.2")


def test_step_in_eval_mode_raises_with_how_to_fix() -> None:
    p = nn.Parameter(torch.ones(3))
    opt = ScheduleFreeAdamW([p])
    opt.eval()
    p.grad = torch.ones(3)
    with pytest.raises(swift_zoo.OptimizerModeError, match=r"eval mode; expected train mode\. Call optimizer\.train\(\)"):
        opt.step()
    assert torch.equal(p, torch.ones(3)) and p not in opt.state
    opt.train()
    opt.step()
    assert not torch.equal(p, torch.ones(3))


def test_eval_then_train_is_identity_and_modes_are_idempotent() -> None:
    gen = torch.Generator().manual_seed(0)
    p = nn.Parameter(torch.randn(5, generator=gen, dtype=torch.float64))
    opt = ScheduleFreeAdamW([p], lr=0.1)
    for t in range(1, 4):
        p.grad = _grad(t, p.detach())
        opt.step()
    y = p.detach().clone()
    opt.eval()
    x = p.detach().clone()
    opt.eval()
    assert torch.equal(p, x) and not torch.allclose(x, y)
    opt.train()
    opt.train()
    torch.testing.assert_close(p.detach(), y, rtol=1e-12, atol=1e-14)


def test_state_dict_records_mode_and_resume_is_identical() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    x = torch.randn(8, 4)

    def train(o: ScheduleFreeAdamW, m: nn.Module, n: int) -> None:
        o.train()
        for _ in range(n):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()

    opt = swift_zoo.build_optimizer("schedule_free_adamw", model, lr=0.01, warmup_steps=2, weight_decay=0.01)
    train(opt, model, 3)
    opt.eval()  # checkpoint in eval mode: the weights hold x
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert all(g["train_mode"] is False for g in saved["optim"]["param_groups"])
    twin = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    twin.load_state_dict(saved["model"])
    opt2 = swift_zoo.build_optimizer("schedule_free_adamw", twin, lr=0.01, warmup_steps=2, weight_decay=0.01)
    opt2.load_state_dict(saved["optim"])
    assert all(g["train_mode"] is False for g in opt2.param_groups)
    train(opt, model, 3)
    train(opt2, twin, 3)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_bf16_gradless_and_state_bytes() -> None:
    p = nn.Parameter(torch.randn(4, 4, dtype=torch.bfloat16))
    frozen = nn.Parameter(torch.randn(4, dtype=torch.bfloat16))
    opt = ScheduleFreeAdamW([p, frozen])
    p.grad = torch.randn_like(p)
    opt.step()
    opt.eval()
    opt.train()
    assert p.dtype == torch.bfloat16 and frozen not in opt.state
    assert {t.dtype for t in opt.state[p].values()} == {torch.bfloat16}
    assert measure_state_bytes(opt) <= declared_state_bytes(opt) == 2 * 16 * 2


def test_hooks_declared_in_spec() -> None:
    entry = swift_zoo.REGISTRY.resolve("optimizer", "schedule_free_adamw")
    assert entry.spec.hooks == ("train", "eval")


def test_per_tensor_and_multi_tensor_paths_agree_on_mixed_shapes() -> None:
    gen = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (7,), (3, 2, 2)]
    a = [nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    opt_a = ScheduleFreeAdamW(a, lr=0.01, weight_decay=0.1, foreach=False)
    opt_b = ScheduleFreeAdamW(b, lr=0.01, weight_decay=0.1, foreach=True)
    for _ in range(4):
        for p, q in zip(a, b):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(a, b))  # gradients left as they were
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
