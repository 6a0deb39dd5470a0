"""Adafactor: update rule against a float64 re-computation and transformers' Adafactor, modes, state contract."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from swift_optim_zoo.adafactor import Adafactor
from swift_zoo import ConfigError
from swift_zoo.optim import measure_state_bytes


def _reference(w0, grads, *, lr, eps1, eps2, clip, decay, beta1, wd, relative, scale_parameter):
    """Explicit loops over rows / columns, float64 (Shazeer & Stern Alg. 4/5 as transformers implements it)."""
    w = w0.numpy().copy()
    factored = w.ndim >= 2
    rows_stat = np.zeros(w.shape[0]) if factored else None
    cols_stat = np.zeros(w.shape[1]) if factored else None
    full = None if factored else np.zeros_like(w)
    mom = np.zeros_like(w)
    for t, grad in enumerate(grads, start=1):
        g = grad.numpy()
        size = min(1e-2, 1 / math.sqrt(t)) if relative else lr
        if scale_parameter:
            size *= max(eps2, math.sqrt(float((w * w).mean())))
        b2 = 1 - t**decay
        sq = g * g + eps1
        if factored:
            for i in range(w.shape[0]):
                rows_stat[i] = b2 * rows_stat[i] + (1 - b2) * sum(sq[i, j] for j in range(w.shape[1])) / w.shape[1]
            for j in range(w.shape[1]):
                cols_stat[j] = b2 * cols_stat[j] + (1 - b2) * sum(sq[i, j] for i in range(w.shape[0])) / w.shape[0]
            mean_row = rows_stat.mean()
            u = np.empty_like(g)
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    u[i, j] = g[i, j] / math.sqrt(rows_stat[i] * cols_stat[j] / mean_row)
        else:
            full = b2 * full + (1 - b2) * sq
            u = g / np.sqrt(full)
        u = u / max(1.0, math.sqrt(float((u * u).mean())) / clip) * size
        if beta1 is not None:
            mom = beta1 * mom + (1 - beta1) * u
            u = mom
        w = w - wd * size * w
        w = w - u
    return w


def _run(w0, grads, **kwargs):
    param = torch.nn.Parameter(w0.clone())
    opt = Adafactor([param], **kwargs)
    for grad in grads:
        param.grad = grad.clone()
        opt.step()
    return param, opt


@pytest.mark.parametrize(("shape", "kwargs"), [
    ((6, 5), {"lr": 0.05}),
    ((6, 5), {"lr": 0.05, "beta1": 0.9, "weight_decay": 0.1, "clip_threshold": 0.5}),
    ((7,), {"lr": 0.05, "beta1": 0.8}),
    ((5, 6), {}),  # transformers' default mode: relative step, parameter scale
    ((5, 6), {"lr": 0.02, "scale_parameter": True}),
])
@pytest.mark.parametrize("fused", [False, True])
def test_matches_float64_recomputation(shape, kwargs, fused):
    g = torch.Generator().manual_seed(len(shape) * 10 + len(kwargs))
    w0 = torch.randn(*shape, dtype=torch.float64, generator=g)
    grads = [torch.randn(*shape, dtype=torch.float64, generator=g) for _ in range(5)]
    param, opt = _run(w0, grads, **kwargs, fused=fused)
    group = opt.param_groups[0]
    expected = _reference(
        w0, grads, lr=group["lr"], eps1=1e-30, eps2=1e-3, clip=group["clip_threshold"], decay=-0.8,
        beta1=group["beta1"], wd=group["weight_decay"], relative=group["relative_step"],
        scale_parameter=group["scale_parameter"],
    )
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kwargs", [
    {"lr": 1e-2, "scale_parameter": False, "relative_step": False},
    {"lr": None, "beta1": 0.9, "weight_decay": 0.01},
])
def test_matches_transformers_adafactor(kwargs):
    transformers_optimization = pytest.importorskip("transformers.optimization")
    g = torch.Generator().manual_seed(3)
    shapes = [(8, 6), (6,), (3, 4, 5)]
    params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    ours = Adafactor(params, **kwargs)
    theirs = transformers_optimization.Adafactor(twins, **kwargs)
    for _ in range(4):
        for p, q in zip(params, twins):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
    for p, q in zip(params, twins):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_modes_follow_lr():
    default = Adafactor([torch.nn.Parameter(torch.zeros(2))]).param_groups[0]
    assert (default["relative_step"], default["scale_parameter"], default["lr"]) == (True, True, None)
    manual = Adafactor([torch.nn.Parameter(torch.zeros(2))], lr=1e-3).param_groups[0]
    assert (manual["relative_step"], manual["scale_parameter"]) == (False, False)


@pytest.mark.parametrize(("kwargs", "expected", "found"), [
    ({"lr": 1e-3, "relative_step": True}, "relative_step=True", "(0.001)"),
    ({"relative_step": False}, "give an lr", "'lr' is None"),
    ({"lr": 1e-3, "warmup_init": True}, "needs relative_step=True", "warmup_init"),
    ({"lr": 1e-3, "decay_rate": 0.8}, "decay_rate must be in (-inf, 0.0)", "got 0.8"),
])
def test_bad_settings_name_expected_and_found(kwargs, expected, found):
    with pytest.raises(ConfigError) as info:
        Adafactor([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    assert expected in str(info.value) and found in str(info.value) and "adafactor" in str(info.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_only_resume_is_identical_and_bf16_stays_bf16(dtype):
    g = torch.Generator().manual_seed(5)
    grads = [(torch.randn(6, 4, generator=g), torch.randn(4, generator=g)) for _ in range(5)]
    params = [torch.nn.Parameter(torch.randn(6, 4).to(dtype)), torch.nn.Parameter(torch.randn(4).to(dtype))]
    frozen = torch.nn.Parameter(torch.randn(3).to(dtype))
    opt = Adafactor(params + [frozen], lr=1e-2, beta1=0.9)
    for gw, gb in grads[:2]:
        params[0].grad, params[1].grad = gw.to(dtype), gb.to(dtype)
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fresh = Adafactor(twins + [torch.nn.Parameter(frozen.detach().clone())], lr=1e-2, beta1=0.9)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for gw, gb in grads[2:]:
        for ps, optimizer in ((params, opt), (twins, fresh)):
            ps[0].grad, ps[1].grad = gw.to(dtype), gb.to(dtype)
            optimizer.step()
    for p, q in zip(params, twins):
        assert torch.equal(p, q) and p.dtype == dtype
    assert frozen not in opt.state
    assert opt.state[params[0]]["exp_avg_sq_row"].dtype == torch.float32
    assert fresh.state[twins[0]]["exp_avg_sq_row"].dtype == torch.float32


@pytest.mark.parametrize("beta1", [None, 0.9])
def test_measured_state_bytes_within_declared(beta1):
    params = [torch.nn.Parameter(torch.randn(64, 48)), torch.nn.Parameter(torch.randn(48)),
              torch.nn.Parameter(torch.randn(4, 8, 6))]
    opt = Adafactor(params, lr=1e-3, beta1=beta1)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    declared = sum(opt.state_bytes_for(p, opt.param_groups[0]) for p in params)
    assert measure_state_bytes(opt) <= declared
    extra = 0 if beta1 is None else 4 * sum(p.numel() for p in params)
    assert declared == 4 * (64 + 48 + 48 + 4 * 8 + 4 * 6) + extra
