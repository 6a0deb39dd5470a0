"""SOAP: update rule vs a float64 re-computation in the reference's formulation, refreshes, state."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.soap import SOAP
from swift_zoo.optim import declared_state_bytes, measure_state_bytes


def reference_soap_2d(w0, grads, *, lr, beta1, beta2, shampoo_beta, eps, wd, freq, initial_bases=None):
    """Float64 SOAP for one matrix, as the reference soap.py does it: the first momentum is kept in
    the rotated basis and re-rotated (back with the old bases, forward with the new ones) after
    every preconditioner update; the first step only builds L, R and their eigenbases.

    ``initial_bases``: use these instead of ``eigh`` at the first step. A rectangular first
    gradient gives a rank-deficient factor whose null-space eigenvectors ``eigh`` may return in
    any rotation; Adam's per-coordinate scaling is not rotation invariant, so two exact
    implementations agree only when they start from the same basis of that null space."""
    w = w0.double().clone()
    rows, cols = w.shape
    L, R = torch.zeros(rows, rows, dtype=torch.float64), torch.zeros(cols, cols, dtype=torch.float64)
    m_rot, v_rot = torch.zeros_like(w), torch.zeros_like(w)
    QL = QR = None
    step = 0

    def eigvecs(matrix):
        return torch.flip(torch.linalg.eigh(matrix)[1], dims=[1])

    for g in grads:
        g = g.double()
        if QL is None:
            L = shampoo_beta * L + (1 - shampoo_beta) * g @ g.T
            R = shampoo_beta * R + (1 - shampoo_beta) * g.T @ g
            QL, QR = initial_bases if initial_bases is not None else (eigvecs(L), eigvecs(R))
            continue
        step += 1
        g_rot = QL.T @ g @ QR
        m_rot = beta1 * m_rot + (1 - beta1) * g_rot
        v_rot = beta2 * v_rot + (1 - beta2) * g_rot**2
        size = lr * (1 - beta2**step) ** 0.5 / (1 - beta1**step)
        w = w - size * (QL @ (m_rot / (v_rot.sqrt() + eps)) @ QR.T)
        w = w * (1 - lr * wd)
        m_orig = QL @ m_rot @ QR.T
        L = shampoo_beta * L + (1 - shampoo_beta) * g @ g.T
        R = shampoo_beta * R + (1 - shampoo_beta) * g.T @ g
        if step % freq == 0:
            order_l = torch.argsort(torch.diag(QL.T @ L @ QL), descending=True)
            v_rot = v_rot[order_l, :]
            QL = torch.linalg.qr(L @ QL[:, order_l])[0]
            order_r = torch.argsort(torch.diag(QR.T @ R @ QR), descending=True)
            v_rot = v_rot[:, order_r]
            QR = torch.linalg.qr(R @ QR[:, order_r])[0]
        m_rot = QL.T @ m_orig @ QR
    return w


@pytest.mark.parametrize(("shape", "shampoo_beta"), [((6, 4), -1.0), ((3, 7), 0.8), ((5, 5), -1.0)])
def test_matrix_update_matches_float64_reference(shape: tuple[int, int], shampoo_beta: float) -> None:
    gen = torch.Generator().manual_seed(sum(shape))
    w0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(8)]
    p = nn.Parameter(w0.clone())
    opt = SOAP([p], lr=0.01, betas=(0.9, 0.95), shampoo_beta=shampoo_beta, weight_decay=0.1,
               precondition_frequency=3)
    bases = None
    for g in grads:
        p.grad = g.clone()
        opt.step()
        if bases is None:
            bases = (opt.state[p]["Q_0"].clone(), opt.state[p]["Q_1"].clone())
    square = shape[0] == shape[1]  # full-rank factors: the reference's own eigh gives the same bases
    beta_s = 0.95 if shampoo_beta < 0 else shampoo_beta
    expected = reference_soap_2d(w0, grads, lr=0.01, beta1=0.9, beta2=0.95, shampoo_beta=beta_s, eps=1e-8,
                                 wd=0.1, freq=3, initial_bases=None if square else bases)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-9, atol=1e-11)


def test_first_step_only_initialises_and_vectors_use_adamw_from_step_one() -> None:
    w, b = nn.Parameter(torch.ones(4, 3)), nn.Parameter(torch.ones(4))
    opt = SOAP([w, b], lr=0.1)
    w.grad, b.grad = torch.randn(4, 3), torch.randn(4)
    opt.step()
    assert torch.equal(w, torch.ones(4, 3)) and not torch.equal(b, torch.ones(4))
    assert set(opt.state[w]) == {"step", "exp_avg", "exp_avg_sq", "GG_0", "GG_1", "Q_0", "Q_1"}
    assert set(opt.state[b]) == {"step", "exp_avg", "exp_avg_sq"}
    q = opt.state[w]["Q_0"]
    torch.testing.assert_close(q.T @ q, torch.eye(4), atol=1e-5, rtol=0)


def test_sides_over_max_precond_dim_are_not_rotated() -> None:
    p = nn.Parameter(torch.randn(12, 3))
    opt = SOAP([p], max_precond_dim=8)
    for _ in range(2):
        p.grad = torch.randn(12, 3)
        opt.step()
    assert "Q_0" not in opt.state[p] and "Q_1" in opt.state[p]
    assert measure_state_bytes(opt) <= declared_state_bytes(opt) == 4 * (2 * 36 + 2 * 9)


def test_state_dict_weights_only_roundtrip_keeps_float32_bases_for_bf16() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Linear(6, 3)).to(torch.bfloat16)
    x = torch.randn(8, 5, dtype=torch.bfloat16)

    def train(o: torch.optim.Optimizer, m: nn.Module, n: int) -> None:
        for _ in range(n):
            o.zero_grad()
            m(x).float().square().mean().backward()
            o.step()

    opt = swift_zoo.build_optimizer("soap", model, lr=1e-2, precondition_frequency=2)
    train(opt, model, 4)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert opt.state[model[0].weight]["Q_0"].dtype == torch.float32
    assert measure_state_bytes(opt) <= declared_state_bytes(opt)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    twin = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Linear(6, 3)).to(torch.bfloat16)
    twin.load_state_dict(model.state_dict())
    opt2 = swift_zoo.build_optimizer("soap", twin, lr=1e-2, precondition_frequency=2)
    buffer.seek(0)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    assert opt2.state[twin[0].weight]["Q_0"].dtype == torch.float32
    train(opt, model, 3)
    train(opt2, twin, 3)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_gradless_params_get_no_state_and_bad_frequency_message() -> None:
    p, frozen = nn.Parameter(torch.randn(3, 3)), nn.Parameter(torch.randn(3, 3))
    opt = SOAP([p, frozen])
    p.grad = torch.randn(3, 3)
    opt.step()
    assert frozen not in opt.state
    with pytest.raises(swift_zoo.ConfigError, match=r"optimizer 'soap': precondition_frequency must be an integer in \[1, 1000000000\], got 0"):
        SOAP([p], precondition_frequency=0)


def test_projection_and_rerotation_against_explicit_products() -> None:
    from swift_optim_zoo.soap.eigenbasis import accumulate_factors, project, rerotate

    gen = torch.Generator().manual_seed(7)
    g = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    ql, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    qr, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    torch.testing.assert_close(project(g, [ql, qr]), ql.T @ g @ qr)
    torch.testing.assert_close(project(g, [ql, qr], back=True), ql @ g @ qr.T)
    torch.testing.assert_close(project(g, [None, qr]), g @ qr)  # one side unrotated: the general path
    new_l, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    m = g.clone()
    rerotate(m, [ql, qr], [new_l, None])
    torch.testing.assert_close(m, new_l.T @ (ql @ g @ qr.T))
    factors = [torch.eye(5, dtype=torch.float64), torch.eye(3, dtype=torch.float64)]
    accumulate_factors(g, factors, 0.9)
    torch.testing.assert_close(factors[0], 0.9 * torch.eye(5, dtype=torch.float64) + 0.1 * g @ g.T)
    torch.testing.assert_close(factors[1], 0.9 * torch.eye(3, dtype=torch.float64) + 0.1 * g.T @ g)
