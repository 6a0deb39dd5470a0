"""Kron and Scion against float64 re-computations: the Kronecker preconditioner as an explicit Kronecker product,
PSGD's fit, Kron's step; Scion's oracles and step; refusals."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.kron import Kron
from swift_optim_zoo.kron import preconditioner as kp
from swift_optim_zoo.kron.kron import update_probability
from swift_optim_zoo.scion import Scion
from swift_zoo.optim import declared_state_bytes, measure_state_bytes
from swift_zoo.testing import TinyLM


def _triangular(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.triu(torch.randn(n, n, generator=gen, dtype=torch.float64)) + 3 * torch.eye(n, dtype=torch.float64)


def test_precondition_is_the_kronecker_product_of_the_factor_grams() -> None:
    gen = torch.Generator().manual_seed(0)
    q1, q2 = _triangular(4, gen), _triangular(3, gen)
    g = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    # row-major vec(G): (Q1^T Q1 (x) Q2^T Q2) vec(G)
    expected = (torch.kron(q1.T @ q1, q2.T @ q2) @ g.flatten()).view(4, 3)
    torch.testing.assert_close(kp.precondition([q1, q2], g), expected)
    d = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
    torch.testing.assert_close(kp.precondition([q1, d], g), q1.T @ q1 @ g @ torch.diag(d * d))


def test_fit_matches_the_matrix_formulas() -> None:
    """A = Q1 G Q2^T, B = Q1^{-T} V Q2^{-1}; Q1 <- Q1 - lr triu(AA^T - BB^T)/bound(AA^T + BB^T) Q1, likewise Q2."""
    gen = torch.Generator().manual_seed(1)
    q1, q2 = _triangular(5, gen), _triangular(4, gen)
    g, v = (torch.randn(5, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    a = q1 @ g @ q2.T
    b = torch.linalg.inv(q1).T @ v @ torch.linalg.inv(q2)
    expected = []
    for q, ta, tb in ((q1, a @ a.T, b @ b.T), (q2, a.T @ a, b.T @ b)):
        total = ta + tb
        bound = kp.spectral_norm_lower_bound(total)
        assert float(bound) <= float(torch.linalg.matrix_norm(total, 2)) * (1 + 1e-12)
        assert float(bound) >= float(torch.linalg.matrix_norm(total, 2)) / math.sqrt(total.shape[0])
        expected.append(q - 0.1 * torch.triu(ta - tb) / (bound + 1e-30) @ q)
    factors = [q1.clone(), q2.clone()]
    kp.fit(factors, g, v, 0.1, 1e-30)
    torch.testing.assert_close(factors[0], expected[0])
    torch.testing.assert_close(factors[1], expected[1])


def test_balance_keeps_the_preconditioner() -> None:
    gen = torch.Generator().manual_seed(2)
    factors = [_triangular(4, gen) * 10, _triangular(3, gen) * 0.1]
    g = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    before = kp.precondition(factors, g)
    kp.balance(factors)
    torch.testing.assert_close(kp.precondition(factors, g), before)
    assert float(factors[0].abs().max()) == pytest.approx(float(factors[1].abs().max()))


def test_kron_step_matches_float64_recomputation() -> None:
    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    grads = [torch.randn(6, 4, generator=gen, dtype=torch.float64) for _ in range(4)]
    p = nn.Parameter(w0.clone())
    opt = Kron([p], lr=0.05, momentum=0.8, weight_decay=0.1)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    w, m = w0.clone(), torch.zeros_like(w0)
    q = [torch.eye(6, dtype=torch.float64), torch.eye(4, dtype=torch.float64)]
    for t, g in enumerate(grads, start=1):
        m = 0.8 * m + 0.2 * g
        mh = m / (1 - 0.8**t)
        probe = Kron._probe(mh.float(), opt.param_groups[0], 1, t).double()
        kp.fit(q, mh, probe, 0.1, float(torch.finfo(torch.bfloat16).tiny))
        u = q[0].T @ q[0] @ mh @ q[1].T @ q[1]
        u = u * min(1.0, 1.1 / (float(u.pow(2).mean().sqrt()) + 1e-6))
        w = w - 0.05 * (u + 0.1 * w)
    torch.testing.assert_close(p.detach(), w, rtol=1e-5, atol=1e-6)  # the factors are float32 in the optimizer


def test_kron_fits_every_step_first_then_less_often_and_large_dims_go_diagonal() -> None:
    assert update_probability(0) == 1.0 and update_probability(499) == 1.0
    assert update_probability(1500) == pytest.approx(math.exp(-1.0)) and update_probability(10**6) == 0.03
    p = nn.Parameter(torch.zeros(3, 10))
    opt = Kron([p], max_size_triangular=5)
    p.grad = torch.ones(3, 10)
    opt.step()
    assert opt.state[p]["Q0"].shape == (3, 3) and opt.state[p]["Q1"].shape == (10,)
    assert measure_state_bytes(opt) <= declared_state_bytes(opt) == 30 * 4 + 4 * (9 + 10)


# ------------------------------------------------------------------------------------------------ Scion
def _ns64(g):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.double()
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / max(float(x.norm()), 1e-7)
    for _ in range(5):
        s = x @ x.T
        x = a * x + b * s @ x + c * s @ s @ x
    return x.T if tall else x


def test_scion_oracles_per_role_match_the_paper() -> None:
    model = TinyLM()
    opt = swift_zoo.build_optimizer("scion", model, lr=0.1, momentum=0.5, scale=2.0, head_scale=7.0,
                                    ns_dtype="float64")
    chosen = {name: opt.oracle_of(p, g) for g in opt.param_groups for name, p in zip(g["param_names"], g["params"])}
    assert chosen["embed_tokens.weight"] == ("col", 2.0)
    assert chosen["block.q_proj.weight"] == ("spectral", 2.0)
    assert chosen["lm_head.weight"] == ("sign", 7.0)
    assert chosen["norm.weight"] == ("bias_rms", 2.0)


@pytest.mark.parametrize("constrained", [False, True])
def test_scion_step_matches_float64_recomputation(constrained: bool) -> None:
    gen = torch.Generator().manual_seed(4)
    shapes = {"hidden": (6, 4), "embed": (10, 4), "head": (10, 4), "norm": (4,)}
    roles = {"hidden": "hidden_matrix", "embed": "embedding", "head": "output_head", "norm": "norm"}
    w0 = {k: torch.randn(s, generator=gen, dtype=torch.float64) for k, s in shapes.items()}
    grads = [{k: torch.randn(s, generator=gen, dtype=torch.float64) for k, s in shapes.items()} for _ in range(3)]
    params = {k: nn.Parameter(w.clone()) for k, w in w0.items()}
    groups = [{"params": [params[k]], "role": roles[k]} for k in shapes]
    opt = Scion(groups, lr=0.05, momentum=0.3, scale=2.0, head_scale=5.0, constrained=constrained,
                weight_decay=0.1, ns_dtype="float64")
    for step in grads:
        for k, p in params.items():
            p.grad = step[k].clone()
        opt.step()
    oracle = {
        "hidden": lambda d: _ns64(d) * math.sqrt(6 / 4),
        "embed": lambda d: d / (d.pow(2).sum(1, keepdim=True).sqrt() / 2 + 1e-8),  # each token's row to RMS 1
        "head": lambda d: torch.sign(d) / 4,
        "norm": lambda d: d / (d.pow(2).mean().sqrt() + 1e-8),
    }
    for k in shapes:
        w, d = w0[k].clone(), torch.zeros_like(w0[k])
        radius = 5.0 if k == "head" else 2.0
        for step in grads:
            d = 0.7 * d + 0.3 * step[k]
            w = (1 - 0.05) * w if constrained else w * (1 - 0.05 * 0.1)
            w = w - 0.05 * radius * oracle[k](d)
        torch.testing.assert_close(params[k].detach(), w, rtol=1e-9, atol=1e-11)


def test_scion_group_lmo_override_and_refusals() -> None:
    p = nn.Parameter(torch.zeros(4, 4))
    opt = Scion([{"params": [p], "lmo": "row"}])
    assert opt.oracle_of(p, opt.param_groups[0]) == ("row", 1.0)
    with pytest.raises(swift_zoo.ConfigError, match=r"optimizer 'scion': lmo must be one of 'auto', 'spectral'"):
        Scion([p], lmo="frobenius")
    with pytest.raises(swift_zoo.ConfigError, match=r"optimizer 'scion': momentum must be in \(0.0, 1.0\]"):
        Scion([p], momentum=0.0)


@pytest.mark.parametrize(("name", "shape"), [("sign", (6, 5)), ("sign", (7,)), ("sign", (3, 4, 2)), ("row", (6, 5)),
                                             ("row", (3, 4, 2)), ("col", (6, 5)), ("spectral", (6, 5)),
                                             ("col", (3, 4, 2)), ("row", (7,)), ("bias_rms", (6, 5)),
                                             ("bias_rms", (7,))])
def test_row_local_oracles_compute_each_row_from_that_row(name: str, shape: tuple[int, ...]) -> None:
    """What FSDP2 relies on: a row-local oracle on a block of rows gives those rows of the oracle on the whole
    tensor; the others do not (so they run whole, on an owner rank)."""
    from swift_optim_zoo.scion.lmo import LMOS, is_row_local

    d = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    whole = LMOS[name](d, ns_steps=5, ns_dtype=torch.float64)
    rows = LMOS[name](d[2:5], ns_steps=5, ns_dtype=torch.float64)
    assert torch.allclose(whole[2:5], rows, rtol=1e-12, atol=1e-12) is is_row_local(name, len(shape))
