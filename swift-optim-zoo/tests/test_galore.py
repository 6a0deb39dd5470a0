"""GaLore-AdamW, GaLore-Adafactor, Q-GaLore: update rules against float64 re-computations, state contract."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from swift_optim_zoo.galore import GaLoreAdafactor, GaLoreAdamW, QGaLoreAdamW
from swift_zoo import ConfigError
from swift_zoo.optim import measure_state_bytes


def _grads(shape, steps, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(steps)]


def _np_basis(grad: np.ndarray, rank: int, previous: np.ndarray | None) -> np.ndarray:
    """Top singular vectors on the smaller side, numpy, signs: aligned with previous, else max-abs entry > 0."""
    rows, cols = grad.shape
    a = grad if rows < cols else grad.T
    u = np.linalg.svd(a)[0][:, :rank]
    for j in range(rank):
        if previous is not None:
            sign = 1.0 if float(previous[:, j] @ u[:, j]) >= 0 else -1.0
        else:
            sign = 1.0 if u[np.argmax(np.abs(u[:, j])), j] >= 0 else -1.0
        u[:, j] *= sign
    return u


def _reference_galore_adamw(w0, grads, *, lr, betas, eps, wd, rank, gap, scale):
    w = w0.numpy().copy()
    rows, cols = w.shape
    right = rows >= cols
    basis = m = v = None
    for t, grad in enumerate(grads):
        g = grad.numpy()
        if t % gap == 0:
            basis = _np_basis(g, rank, basis)
        r = g @ basis if right else basis.T @ g
        if m is None:
            m, v = np.zeros_like(r), np.zeros_like(r)
        m = betas[0] * m + (1 - betas[0]) * r
        v = betas[1] * v + (1 - betas[1]) * r * r
        step = t + 1
        size = lr * math.sqrt(1 - betas[1] ** step) / (1 - betas[0] ** step)
        n = m / (np.sqrt(v) + eps)
        back = n @ basis.T if right else basis @ n
        w = w - size * scale * back
        w = w - lr * wd * w
    return w


def _run(optimizer_cls, w0, grads, **kwargs):
    param = torch.nn.Parameter(w0.clone())
    opt = optimizer_cls([param], **kwargs)
    for grad in grads:
        param.grad = grad.to(param.dtype).clone()
        opt.step()
    return param, opt


@pytest.mark.parametrize(("shape", "seed"), [((12, 8), 0), ((8, 12), 1), ((10, 10), 2)])
def test_galore_adamw_matches_float64_recomputation_across_refreshes(shape, seed):
    w0 = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(100 + seed))
    grads = _grads(shape, 8, seed)
    kwargs = {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1, "rank": 3,
              "update_proj_gap": 3, "scale": 0.5}
    param, _ = _run(GaLoreAdamW, w0, grads, proj_method="svd", **kwargs)
    expected = _reference_galore_adamw(w0, grads, lr=0.05, betas=(0.8, 0.95), eps=1e-6, wd=0.1, rank=3, gap=3,
                                       scale=0.5)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_refresh_happens_every_gap_and_only_then():
    grads = _grads((12, 8), 7, 3)
    param = torch.nn.Parameter(torch.zeros(12, 8, dtype=torch.float64))
    opt = GaLoreAdamW([param], rank=3, update_proj_gap=3, proj_method="svd")
    bases = []
    for grad in grads:
        param.grad = grad
        opt.step()
        bases.append(opt.state[param]["basis"].clone())
    changed = [i for i in range(1, 7) if not torch.equal(bases[i], bases[i - 1])]
    assert changed == [3, 6]


def test_non_matrix_params_follow_plain_adamw_exactly():
    g = torch.Generator().manual_seed(0)
    shapes = [(12, 8), (8,), (8,), (3, 8), (3,)]
    params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params if p.dim() == 1]
    opt = GaLoreAdamW(params, lr=0.01, weight_decay=0.05, rank=2, proj_method="svd")
    reference = torch.optim.AdamW(twins, lr=0.01, eps=1e-6, weight_decay=0.05, fused=True)
    for _ in range(4):
        grads = [torch.randn(*s, generator=g) for s in shapes]
        for p, grad in zip(params, grads):
            p.grad = grad
        for q, grad in zip(twins, [gr for gr in grads if gr.dim() == 1]):
            q.grad = grad.clone()
        opt.step()
        reference.step()
    for p, q in zip([p for p in params if p.dim() == 1], twins):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # the matrices took the low-rank path: 12 x 8 weight -> 12 x 2 moments; 3 x 8 -> 2 x 8
    assert opt.state[params[0]]["exp_avg"].shape == (12, 2)
    assert opt.state[params[3]]["exp_avg"].shape == (2, 8)


def test_matrix_smaller_than_rank_goes_to_adamw_and_no_state_without_grad():
    small = torch.nn.Parameter(torch.randn(4, 3))
    big = torch.nn.Parameter(torch.randn(10, 8))
    frozen = torch.nn.Parameter(torch.randn(10, 8))
    opt = GaLoreAdamW([small, big, frozen], rank=3, proj_method="svd")
    small.grad, big.grad = torch.randn(4, 3), torch.randn(10, 8)
    before = frozen.detach().clone()
    opt.step()
    assert set(opt.state[small]) == {"exp_avg", "exp_avg_sq", "step"}
    assert opt.state[small]["exp_avg"].shape == (4, 3)
    assert opt.state[big]["basis"].shape == (8, 3)
    assert frozen not in opt.state
    assert torch.equal(frozen, before)


def _roundtrip(opt_cls, kwargs, dtype, steps_before, steps_after, shape=(12, 8)):
    grads = _grads(shape, steps_before + steps_after, 5)
    w0 = torch.randn(*shape, generator=torch.Generator().manual_seed(9)).to(dtype)
    bias0 = torch.randn(shape[0]).to(dtype)
    p, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(bias0.clone())
    opt = opt_cls([p, b], **kwargs)
    for grad in grads[:steps_before]:
        p.grad, b.grad = grad.to(dtype), grad[:, 0].to(dtype)
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    p2, b2 = torch.nn.Parameter(p.detach().clone()), torch.nn.Parameter(b.detach().clone())
    fresh = opt_cls([p2, b2], **kwargs)
    fresh.load_state_dict(loaded)
    for grad in grads[steps_before:]:
        for params, optimizer in (((p, b), opt), ((p2, b2), fresh)):
            params[0].grad, params[1].grad = grad.to(dtype), grad[:, 0].to(dtype)
            optimizer.step()
    assert torch.equal(p, p2) and torch.equal(b, b2)
    return opt, p


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("cls", "kwargs"), [
    (GaLoreAdamW, {"rank": 3, "update_proj_gap": 3, "proj_method": "randomized", "weight_decay": 0.1}),
    (GaLoreAdafactor, {"rank": 3, "update_proj_gap": 3, "proj_method": "svd", "beta1": 0.9}),
    (QGaLoreAdamW, {"rank": 3, "update_proj_gap": 1, "proj_method": "svd", "proj_group_size": 8,
                    "queue_size": 2, "cos_threshold": -1.0}),
])
def test_weights_only_resume_is_identical_across_a_refresh(cls, kwargs, dtype):
    opt, p = _roundtrip(cls, kwargs, dtype, steps_before=2, steps_after=3)
    assert p.dtype == dtype
    state = opt.state[p]
    floating = [v for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert floating and all(v.dtype == torch.float32 for v in floating)


@pytest.mark.parametrize(("cls", "kwargs"), [
    (GaLoreAdamW, {}), (GaLoreAdafactor, {}), (GaLoreAdafactor, {"beta1": 0.9}),
    (QGaLoreAdamW, {"proj_bits": 8}), (QGaLoreAdamW, {"proj_bits": 4}),
])
def test_measured_state_bytes_within_declared_and_below_adamw(cls, kwargs):
    weight = torch.nn.Parameter(torch.randn(64, 48))
    opt = cls([weight], rank=8, proj_method="svd", **kwargs)
    weight.grad = torch.randn(64, 48)
    opt.step()
    declared = opt.state_bytes_for(weight, opt.param_groups[0])
    measured = measure_state_bytes(opt)
    assert measured <= declared
    assert declared - measured <= 16
    assert declared < 0.45 * 2 * 64 * 48 * 4


def test_state_bytes_at_rank_128_on_2048_square_is_under_a_quarter_of_adamw():
    weight = torch.empty(2048, 2048, device="meta")
    for cls, bound in ((GaLoreAdamW, 0.25), (QGaLoreAdamW, 0.25), (GaLoreAdafactor, 0.1)):
        opt = cls([torch.nn.Parameter(torch.empty(1))], rank=128)
        ratio = opt._low_rank_state_bytes(2048, 2048, 128, 4, opt.param_groups[0]) / (8 * weight.numel())
        assert ratio <= bound, (cls.name, ratio)


# ----------------------------------------------------------------------------------------- GaLore-Adafactor
def _reference_galore_adafactor(w0, grads, *, lr, wd, rank, gap, scale, eps1, clip, decay, beta1):
    w = w0.numpy().copy()
    rows, cols = w.shape
    right = rows >= cols
    basis = row = col = mom = None
    for t, grad in enumerate(grads):
        g = grad.numpy()
        if t % gap == 0:
            basis = _np_basis(g, rank, basis)
        r = g @ basis if right else basis.T @ g
        if row is None:
            row, col, mom = np.zeros(r.shape[0]), np.zeros(r.shape[1]), np.zeros_like(r)
        step = t + 1
        b2 = 1 - step**decay
        sq = r * r + eps1
        row = b2 * row + (1 - b2) * sq.mean(axis=1)
        col = b2 * col + (1 - b2) * sq.mean(axis=0)
        v_hat = np.outer(row, col) / row.mean()
        u = r / np.sqrt(v_hat)
        u = u / max(1.0, math.sqrt((u * u).mean()) / clip)
        u = u * lr
        if beta1 is not None:
            mom = beta1 * mom + (1 - beta1) * u
            u = mom
        back = u @ basis.T if right else basis @ u
        w = w - lr * wd * w
        w = w - scale * back
    return w


@pytest.mark.parametrize(("shape", "beta1"), [((12, 8), None), ((8, 12), 0.9)])
def test_galore_adafactor_matches_float64_recomputation(shape, beta1):
    w0 = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    grads = _grads(shape, 7, 12)
    param, _ = _run(GaLoreAdafactor, w0, grads, lr=0.03, weight_decay=0.1, rank=3, update_proj_gap=3, scale=0.5,
                    proj_method="svd", beta1=beta1)
    expected = _reference_galore_adafactor(w0, grads, lr=0.03, wd=0.1, rank=3, gap=3, scale=0.5, eps1=1e-30,
                                           clip=1.0, decay=-0.8, beta1=beta1)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------- Q-GaLore
def test_q_galore_projects_with_the_dequantised_basis():
    shape = (12, 8)
    w0 = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    grads = _grads(shape, 2, 14)
    param, opt = _run(QGaLoreAdamW, w0, grads[:1], lr=0.05, rank=3, proj_method="svd", proj_bits=4,
                      proj_group_size=8)
    state = opt.state[param]
    assert state["basis_codes"].dtype == torch.uint8 and state["basis_codes"].numel() == 8 * 3 // 2
    # one step by hand: quantise the exact basis (min/max per group of 8, 15 levels)
    basis = _np_basis(grads[0].numpy(), 3, None).reshape(-1)
    groups = basis.reshape(-1, 8)
    low, high = groups.min(axis=1, keepdims=True), groups.max(axis=1, keepdims=True)
    step = (high - low) / 15
    dequantised = (np.round((groups - low) / step) * step + low).reshape(8, 3)
    r = grads[0].numpy() @ dequantised
    update = (0.1 * r) / (np.sqrt(0.001 * r * r) + 1e-6) / 0.1 * math.sqrt(0.001)  # bias-corrected Adam step 1
    expected = w0.numpy() - 0.05 * 0.25 * (update @ dequantised.T)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-6, atol=1e-9)


def _refresh_steps(grads, **kwargs):
    param = torch.nn.Parameter(torch.zeros(12, 8, dtype=torch.float64))
    opt = QGaLoreAdamW([param], rank=3, proj_method="svd", proj_group_size=8, **kwargs)
    refreshes, codes = [], None
    for t, grad in enumerate(grads):
        param.grad = grad
        opt.step()
        new = opt.state[param]["basis_codes"]
        if codes is None or not torch.equal(new, codes) or t == 0:
            refreshes.append(t)
        codes = new.clone()
    return refreshes, opt.state[param]


def test_q_galore_doubles_the_interval_of_a_stable_layer():
    # the same gradient direction every step: cosine 1 at every refresh; perturb slightly so codes change
    base = _grads((12, 8), 1, 15)[0]
    grads = [base * (1 + 0.01 * t) + 1e-3 * torch.randn(12, 8, dtype=torch.float64,
             generator=torch.Generator().manual_seed(t)) for t in range(12)]
    _, state = _refresh_steps(grads, update_proj_gap=1, queue_size=2, cos_threshold=0.4)
    # refreshes at steps 0 (none before), 1 (queue [1]), 2 (queue full -> gap 2), 4 (-> 4), 8 (-> 8)
    assert state["proj_gap"] == 8
    assert len(state["cos_queue"]) == 2 and min(state["cos_queue"]) > 0.99


def test_q_galore_keeps_the_interval_of_an_unstable_layer():
    _, state = _refresh_steps(_grads((12, 8), 8, 16), update_proj_gap=1, queue_size=2, cos_threshold=0.99)
    assert state["proj_gap"] == 1


# ----------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(("cls", "kwargs", "expected", "found"), [
    (GaLoreAdamW, {"rank": 0}, "rank must be an integer in [1, 65536]", "got 0"),
    (GaLoreAdamW, {"proj_method": "qr"}, "one of 'randomized', 'svd'", "got 'qr'"),
    (GaLoreAdamW, {"scale": -1.0}, "scale must be > 0", "got -1.0"),
    (GaLoreAdamW, {"betas": (0.9, 1.0)}, "betas[1] must be in [0.0, 1.0)", "got 1.0"),
    (QGaLoreAdamW, {"proj_bits": 2}, "one of 4, 8", "got 2"),
    (QGaLoreAdamW, {"proj_group_size": 15}, "an even int >= 2", "got 15"),
    (GaLoreAdafactor, {"decay_rate": 0.5}, "decay_rate must be in (-inf, 0.0)", "got 0.5"),
])
def test_bad_hyperparameters_name_expected_and_found(cls, kwargs, expected, found):
    with pytest.raises(ConfigError) as info:
        cls([torch.nn.Parameter(torch.zeros(4, 4))], **kwargs)
    assert expected in str(info.value) and found in str(info.value)
    assert cls.name in str(info.value)


# ----------------------------------------------------------------------------------------- roles and devices
def test_roles_decide_not_shapes_embedding_and_head_take_adamw():
    import swift_zoo

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(20, 12)
            self.hidden = torch.nn.Linear(12, 10)
            self.norm = torch.nn.LayerNorm(10)
            self.lm_head = torch.nn.Linear(10, 20, bias=False)

        def forward(self, tokens):
            return self.lm_head(self.norm(self.hidden(self.embed(tokens))))

    model = Tiny()
    opt = swift_zoo.build_optimizer("galore_adamw", model, rank=4, proj_method="svd")
    model(torch.tensor([[1, 2, 3]])).square().mean().backward()
    opt.step()
    assert opt.state[model.hidden.weight]["exp_avg"].shape == (4, 12)
    assert "basis" in opt.state[model.hidden.weight]
    for matrix in (model.embed.weight, model.lm_head.weight):
        assert "basis" not in opt.state[matrix] and opt.state[matrix]["exp_avg"].shape == matrix.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_saved_state_lands_on_the_cuda_parameter():
    grads = _grads((12, 8), 5, 21)
    p = torch.nn.Parameter(torch.randn(12, 8, dtype=torch.float64))
    opt = QGaLoreAdamW([p], rank=3, update_proj_gap=2, proj_method="svd", proj_group_size=8)
    for grad in grads[:2]:
        p.grad = grad
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    q = torch.nn.Parameter(p.detach().cuda())
    fresh = QGaLoreAdamW([q], rank=3, update_proj_gap=2, proj_method="svd", proj_group_size=8)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert all(v.device == q.device for v in fresh.state[q].values() if isinstance(v, torch.Tensor))
    for grad in grads[2:]:
        p.grad, q.grad = grad, grad.cuda()
        opt.step()
        fresh.step()
    torch.testing.assert_close(q.cpu(), p.detach(), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ galore-torch compatibility mode
def test_compat_mode_refreshes_at_one_based_steps_1_6_11_with_raw_svd_signs():
    grads = _grads((12, 8), 12, 5)
    param = torch.nn.Parameter(torch.zeros(12, 8, dtype=torch.float64))
    opt = GaLoreAdamW([param], rank=3, update_proj_gap=5, galore_torch_compat=True)
    refreshed, previous = [], None
    for step, grad in enumerate(grads, start=1):
        param.grad = grad
        opt.step()
        basis = opt.state[param]["basis"]
        if previous is None or not torch.equal(basis, previous):
            refreshed.append(step)
            vh = torch.linalg.svd(grad, full_matrices=False)[2]
            assert torch.equal(basis, vh[:3].mT)  # LAPACK's signs, no alignment
        previous = basis.clone()
    assert refreshed == [1, 6, 11]


def test_compat_mode_other_params_take_galore_torch_adamw_arithmetic():
    """eps added to sqrt(v), bias corrections in the step size, decay after the update (float64 recomputation)."""
    g = torch.Generator().manual_seed(0)
    bias = torch.nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))
    twin = torch.nn.Parameter(bias.detach().clone())
    grads = [torch.randn(5, generator=g, dtype=torch.float64) * 1e-3 for _ in range(4)]
    lr, (b1, b2), eps, wd = 0.1, (0.8, 0.9), 1e-3, 0.2
    opt = GaLoreAdamW([bias], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, rank=2, galore_torch_compat=True)
    default = GaLoreAdamW([twin], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, rank=2)
    w, m, v = bias.detach().clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t, grad in enumerate(grads, start=1):
        bias.grad, twin.grad = grad.clone(), grad.clone()
        opt.step()
        default.step()
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        w = w - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + eps)
        w = w - lr * wd * w
    torch.testing.assert_close(bias.detach(), w, rtol=1e-12, atol=1e-14)
    assert (twin.detach() - w).abs().max() > 1e-4  # the default (torch's AdamW) differs: eps placement, decay order


def test_compat_mode_is_a_bool():
    with pytest.raises(ConfigError, match=r"galore_torch_compat must be a bool, got 'yes'"):
        GaLoreAdamW([torch.nn.Parameter(torch.zeros(4, 4))], galore_torch_compat="yes")
