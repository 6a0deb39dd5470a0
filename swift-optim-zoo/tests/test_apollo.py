"""APOLLO and APOLLO-Mini: update rule against a float64 re-computation, projection schedule, state contract."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from swift_optim_zoo.apollo import ApolloAdamW, ApolloMini
from swift_zoo import ConfigError
from swift_zoo.optim import measure_state_bytes


def _grads(shape, steps, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(steps)]


def _projection_for(seed: int, dim: int, rank: int, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """The seed's Gaussian draws as the optimizer makes them in ``dtype`` (float32 draws differ from float64 ones)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(dim, rank, generator=generator, dtype=dtype).double().numpy() / math.sqrt(rank)


def _reference_apollo(w0, grads, seeds, *, lr, betas, eps, wd, rank, scale, channel, gamma, draws=torch.float64):
    """Plain numpy APOLLO; ``seeds[t]`` is the projection seed used at step t (read from the optimizer)."""
    w = w0.numpy().copy()
    rows, cols = w.shape
    right = rows >= cols
    m = v = previous_norm = None
    for t, grad in enumerate(grads):
        g = grad.numpy()
        p = _projection_for(seeds[t], min(rows, cols), rank, draws)
        r = g @ p if right else p.T @ g
        if m is None:
            m, v = np.zeros_like(r), np.zeros_like(r)
        m = betas[0] * m + (1 - betas[0]) * r
        v = betas[1] * v + (1 - betas[1]) * r * r
        n = m / (np.sqrt(v) + eps)
        if channel and right:
            factor = (np.linalg.norm(n, axis=1) / (np.linalg.norm(r, axis=1) + 1e-8))[:, None]
        elif channel:
            factor = (np.linalg.norm(n, axis=0) / (np.linalg.norm(r, axis=0) + 1e-8))[None, :]
        else:
            factor = np.linalg.norm(n) / (np.linalg.norm(r) + 1e-8)
        u = g * factor
        norm = np.linalg.norm(u)
        if previous_norm is not None and norm > gamma * previous_norm:
            shrink = norm / (gamma * (previous_norm + 1e-8))
            u, norm = u / shrink, norm / shrink
        previous_norm = norm
        step = t + 1
        size = lr * math.sqrt(1 - betas[1] ** step) / (1 - betas[0] ** step)
        w = w - size * math.sqrt(scale) * u
        w = w - lr * wd * w
    return w


def _run_with_seeds(cls, w0, grads, **kwargs):
    param = torch.nn.Parameter(w0.clone())
    opt = cls([param], **kwargs)
    seeds = []
    for grad in grads:
        param.grad = grad.clone()
        opt.step()
        seeds.append(opt.state[param]["proj_seed"])
    return param, opt, seeds


SHAPES_AND_SCALES = [((12, 8), "channel"), ((8, 12), "channel"), ((12, 8), "tensor"), ((9, 9), "channel")]


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize(("shape", "scale_type"), SHAPES_AND_SCALES)
def test_apollo_matches_float64_recomputation(shape, scale_type, fused):
    w0 = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # growing gradients make the norm-growth limiter act
    grads = [g * (1.5**t) for t, g in enumerate(_grads(shape, 7, 2))]
    kwargs = {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1, "rank": 3,
              "update_proj_gap": 3, "scale": 2.0, "scale_type": scale_type, "fused": fused}
    param, _, seeds = _run_with_seeds(ApolloAdamW, w0, grads, **kwargs)
    expected = _reference_apollo(w0, grads, seeds, lr=0.05, betas=(0.8, 0.95), eps=1e-6, wd=0.1, rank=3, scale=2.0,
                                 channel=scale_type == "channel", gamma=1.01)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("shape", "scale_type"), SHAPES_AND_SCALES)
def test_fused_float32_matches_float64_recomputation(shape, scale_type):
    """float32 on CPU: the norm and the write run in the C kernels (per-row, per-column and tensor-wise
    scales); against the float64 rule on the same float32 inputs."""
    w0 = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    grads = [(g * (1.5**t)).float() for t, g in enumerate(_grads(shape, 7, 2))]
    kwargs = {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1, "rank": 3,
              "update_proj_gap": 3, "scale": 2.0, "scale_type": scale_type, "fused": True}
    param, _, seeds = _run_with_seeds(ApolloAdamW, w0, grads, **kwargs)
    expected = _reference_apollo(w0.double(), [g.double() for g in grads], seeds, lr=0.05, betas=(0.8, 0.95),
                                 eps=1e-6, wd=0.1, rank=3, scale=2.0, channel=scale_type == "channel", gamma=1.01,
                                 draws=torch.float32)
    np.testing.assert_allclose(param.detach().double().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_projection_seed_changes_every_gap_steps_only():
    _, _, seeds = _run_with_seeds(ApolloAdamW, torch.zeros(12, 8, dtype=torch.float64), _grads((12, 8), 7, 3),
                                  rank=3, update_proj_gap=3)
    changes = [t for t in range(1, 7) if seeds[t] != seeds[t - 1]]
    assert changes == [3, 6]
    assert len(set(seeds)) == 3


def test_apollo_mini_is_rank_one_tensor_scaling_with_sqrt_128():
    shape = (12, 8)
    w0 = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    grads = _grads(shape, 5, 5)
    param, opt, seeds = _run_with_seeds(ApolloMini, w0, grads, lr=0.01, update_proj_gap=2)
    group = opt.param_groups[0]
    assert (group["rank"], group["scale_type"], group["scale"]) == (1, "tensor", 128.0)
    assert opt.state[param]["exp_avg"].shape == (12, 1)
    expected = _reference_apollo(w0, grads, seeds, lr=0.01, betas=(0.9, 0.999), eps=1e-6, wd=0.0, rank=1,
                                 scale=128.0, channel=False, gamma=1.01)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_non_matrix_params_follow_plain_adamw_exactly():
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in [(12, 8), (8,)]]
    twin = torch.nn.Parameter(params[1].detach().clone())
    opt = ApolloAdamW(params, lr=0.01, weight_decay=0.05, rank=2)
    reference = torch.optim.AdamW([twin], lr=0.01, eps=1e-6, weight_decay=0.05, fused=True)
    for _ in range(3):
        params[0].grad, params[1].grad = torch.randn(12, 8, generator=g), torch.randn(8, generator=g)
        twin.grad = params[1].grad.clone()
        opt.step()
        reference.step()
    torch.testing.assert_close(params[1], twin, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cls", [ApolloAdamW, ApolloMini])
def test_weights_only_resume_is_identical_across_a_new_projection(cls, dtype):
    grads = _grads((12, 8), 6, 6)
    p = torch.nn.Parameter(torch.randn(12, 8).to(dtype))
    frozen = torch.nn.Parameter(torch.randn(12, 8).to(dtype))
    kwargs = {"rank": 2, "update_proj_gap": 3} if cls is ApolloAdamW else {"update_proj_gap": 3}
    opt = cls([p, frozen], **kwargs)
    for grad in grads[:2]:
        p.grad = grad.to(dtype)
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    p2 = torch.nn.Parameter(p.detach().clone())
    fresh = cls([p2, torch.nn.Parameter(frozen.detach().clone())], **kwargs)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for grad in grads[2:]:
        p.grad, p2.grad = grad.to(dtype), grad.to(dtype)
        opt.step()
        fresh.step()
    assert torch.equal(p, p2) and p.dtype == dtype
    assert frozen not in opt.state
    assert opt.state[p]["exp_avg"].dtype == torch.float32


@pytest.mark.parametrize(("cls", "kwargs", "bound"), [(ApolloAdamW, {"rank": 8}, 0.2), (ApolloMini, {}, 0.02)])
def test_measured_state_bytes_within_declared(cls, kwargs, bound):
    weight = torch.nn.Parameter(torch.randn(256, 192))
    opt = cls([weight], **kwargs)
    weight.grad = torch.randn(256, 192)
    opt.step()
    declared = opt.state_bytes_for(weight, opt.param_groups[0])
    assert measure_state_bytes(opt) <= declared
    assert declared <= bound * 2 * 4 * weight.numel()


def test_state_bytes_on_2048_square():
    opt = ApolloMini([torch.nn.Parameter(torch.empty(1))])
    ratio = opt._low_rank_state_bytes(2048, 2048, 1, 4, opt.param_groups[0]) / (8 * 2048 * 2048)
    assert ratio <= 0.02
    opt = ApolloAdamW([torch.nn.Parameter(torch.empty(1))], rank=128)
    assert opt._low_rank_state_bytes(2048, 2048, 128, 4, opt.param_groups[0]) / (8 * 2048 * 2048) <= 0.13


@pytest.mark.parametrize(("kwargs", "expected", "found"), [
    ({"scale_type": "row"}, "one of 'channel', 'tensor'", "got 'row'"),
    ({"norm_growth_limit": 0.9}, "norm_growth_limit must be in [1.0, inf]", "got 0.9"),
    ({"lr": -1.0}, "lr must be >= 0", "got -1.0"),
])
def test_bad_hyperparameters_name_expected_and_found(kwargs, expected, found):
    with pytest.raises(ConfigError) as info:
        ApolloAdamW([torch.nn.Parameter(torch.zeros(4, 4))], **kwargs)
    assert expected in str(info.value) and found in str(info.value) and "apollo_adamw" in str(info.value)


def test_spec_declares_the_non_commercial_reference():
    import swift_zoo

    specs = {e.name: e.spec for e in swift_zoo.list_optimizers()}
    for name in ("apollo_adamw", "apollo_mini"):
        assert "CC BY-NC" in specs[name].license
        assert specs[name].roles == ("hidden_matrix",)


@pytest.mark.parametrize("cls", [ApolloAdamW, ApolloMini])
def test_stored_projection_equals_regenerated_and_is_dropped_at_refresh(cls):
    """store_projection=True keeps the projection for speed; it must be the seed's projection, replaced at
    every refresh, so both settings follow one trajectory; False keeps no projection at all."""
    w0 = torch.randn(10, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    grads = _grads((10, 7), 7, 5)
    kwargs = {"lr": 0.05, "update_proj_gap": 3, **({"rank": 3} if cls is ApolloAdamW else {})}
    stored, opt_stored, seeds = _run_with_seeds(cls, w0, grads, **kwargs)
    regenerated, opt_regen, _ = _run_with_seeds(cls, w0, grads, store_projection=False, **kwargs)
    torch.testing.assert_close(stored, regenerated, rtol=0, atol=0)
    rank = 3 if cls is ApolloAdamW else 1
    kept = opt_stored.state[stored]["projection"].double().numpy()
    np.testing.assert_allclose(kept, _projection_for(seeds[-1], 7, rank), rtol=1e-6)
    assert "projection" not in opt_regen.state[regenerated]
    assert measure_state_bytes(opt_stored) - measure_state_bytes(opt_regen) == 7 * rank * 8


def test_store_projection_must_be_a_bool():
    with pytest.raises(ConfigError, match="optimizer 'apollo_adamw': store_projection must be a bool, got 'yes'"):
        ApolloAdamW([torch.nn.Parameter(torch.zeros(4, 4))], store_projection="yes")
