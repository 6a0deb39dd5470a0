"""The element-wise optimizers (adopt, ademamix, mars, lamb, adan, prodigy, stable_adamw, sgd) and CAME against
float64 re-computations of their papers' update rules over several steps, eager and fused; cautious masks;
validation messages."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.adan import Adan
from swift_optim_zoo.ademamix import AdEMAMix
from swift_optim_zoo.adopt import ADOPT
from swift_optim_zoo.came import CAME
from swift_optim_zoo.lamb import LAMB
from swift_optim_zoo.mars import MARS
from swift_optim_zoo.prodigy import Prodigy
from swift_optim_zoo.sgd import SGD
from swift_optim_zoo.stable_adamw import StableAdamW
from swift_zoo.optim import declared_state_bytes, measure_state_bytes

SHAPES = [(6, 5), (7,)]
STEPS = 5


def cautious(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """arXiv:2411.16085 Alg. 1: keep u where u*g > 0, scale by numel / (kept + 1)."""
    keep = (u * g > 0).double()
    return u * keep * (u.numel() / (keep.sum() + 1))


# ------------------------------------------------------------------ float64 references, one tensor at a time
def ref_adopt(w, grads, *, lr, b1, b2, eps, wd, decoupled, caution):
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        if t == 1:
            v = g * g
            continue
        clip = t**0.25
        m = b1 * m + (1 - b1) * torch.clamp(g / torch.clamp(v.sqrt(), min=eps), -clip, clip)
        w = w - lr * (cautious(m, g) if caution else m)
        v = b2 * v + (1 - b2) * g * g
    return w


def ref_ademamix(w, grads, *, lr, b1, b2, b3, alpha, eps, wd, warmup, caution):
    m1, m2, v = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        a, b3t = alpha, b3
        if warmup:
            a = alpha * min(t / warmup, 1.0)
            if t < warmup:  # half-life interpolation: f(beta) = ln 0.5 / ln beta, linear in t
                x = t / warmup
                b3t = min(math.exp(math.log(b1) * math.log(b3) / ((1 - x) * math.log(b3) + x * math.log(b1))), b3)
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b3t * m2 + (1 - b3t) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m1 / (1 - b1**t) + a * m2) / ((v / (1 - b2**t)).sqrt() + eps)
        if caution:
            u = cautious(u, g)
        w = w - lr * (u + wd * w)
    return w


def ref_mars(w, grads, *, lr, b1, b2, gamma, eps, wd, caution, corrected=True):
    m, v, last = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        c = g
        if corrected:
            c = g + gamma * b1 / (1 - b1) * (g - last)
            c = c / max(1.0, float(c.norm()))
            last = g
        m = b1 * m + (1 - b1) * c
        v = b2 * v + (1 - b2) * c * c
        u = (m / (1 - b1**t)) / ((v.sqrt() + eps) / math.sqrt(1 - b2**t))
        if caution:
            u = cautious(u, g)
        w = w * (1 - lr * wd) - lr * u
    return w


def ref_lamb(w, grads, *, lr, b1, b2, eps, wd, caution, max_norm=10.0):
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        r = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
        if caution:
            r = cautious(r, g)
        u = r + wd * w
        wn, un = min(float(w.norm()), max_norm), float(u.norm())
        ratio = wn / un if wn > 0 and un > 0 else 1.0
        w = w - lr * ratio * u
    return w


def ref_adan(w, grads, *, lr, b1, b2, b3, eps, wd, decoupled):
    m, n, v = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
    prev = grads[0]
    for t, g in enumerate(grads, start=1):
        d = g - prev
        m = b1 * m + (1 - b1) * g
        n = b2 * n + (1 - b2) * d
        v = b3 * v + (1 - b3) * (g + b2 * d) ** 2
        u = (m / (1 - b1**t) + b2 * n / (1 - b2**t)) / ((v / (1 - b3**t)).sqrt() + eps)
        w = w * (1 - lr * wd) - lr * u if decoupled else (w - lr * u) / (1 + lr * wd)
        prev = g
    return w


def ref_stable_adamw(w, grads, *, lr, b1, b2, eps, wd):
    """Algorithm 2 of arXiv:2304.13013 written with explicit bias corrections: the debiased-beta EMA equals the
    bias-corrected EMA, m_hat = m / (1 - b1^t)."""
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = m / (1 - b1**t), v / (1 - b2**t)
        rms = max(1.0, float((g * g / torch.clamp(vh, min=eps * eps)).mean().sqrt()))
        step = lr / rms
        w = w * (1 - step * wd) - step * mh / (vh.sqrt() + eps)
    return w


def ref_sgd(w, grads, *, lr, mu, damp, nesterov, wd, decoupled):
    b = None
    for g in grads:
        if not decoupled:
            g = g + wd * w
        b = g.clone() if b is None else mu * b + (1 - damp) * g
        d = g + mu * b if nesterov else b
        w = (w * (1 - lr * wd) if decoupled else w) - lr * d
    return w


def ref_prodigy(ws, grads_per_step, *, lr, b1, b2, eps, wd, d0, safeguard):
    """Algorithm 4 of arXiv:2306.06101 with every sum over all tensors (prodigyopt's arithmetic)."""
    b3 = math.sqrt(b2)
    x0 = [w.clone() for w in ws]
    ms = [torch.zeros_like(w) for w in ws]
    vs = [torch.zeros_like(w) for w in ws]
    ss = [torch.zeros_like(w) for w in ws]
    d, d_max, r = d0, d0, 0.0
    for grads in grads_per_step:
        dlr = d * lr
        r *= b3
        denom = 0.0
        for i, g in enumerate(grads):
            r += (d / d0) * dlr * float((g * (x0[i] - ws[i])).sum())
            ms[i] = b1 * ms[i] + d * (1 - b1) * g
            vs[i] = b2 * vs[i] + d * d * (1 - b2) * g * g
            ss[i] = b3 * ss[i] + (d / d0) * (d * lr if safeguard else dlr) * g
            denom += float(ss[i].abs().sum())
        d_hat = r / denom
        if d == d0:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d)
        for i in range(len(ws)):
            ws[i] = ws[i] * (1 - wd * dlr) - dlr * ms[i] / (vs[i].sqrt() + d * eps)
    return ws, d


def _factored(row, col):
    return (row / row.mean(-1, keepdim=True)).rsqrt()[:, None] * col.rsqrt()[None, :]


def ref_came(w, grads, *, lr, b1, b2, b3, eps1, eps2, clip, wd):
    m = torch.zeros_like(w)
    if w.dim() == 2:
        r, c, rr, rc = (torch.zeros(w.shape[0]), torch.zeros(w.shape[1]), torch.zeros(w.shape[0]),
                        torch.zeros(w.shape[1]))
        r, c, rr, rc = (x.double() for x in (r, c, rr, rc))
    else:
        v = torch.zeros_like(w)
    for g in grads:
        sq = g * g + eps1
        if w.dim() == 2:
            r = b2 * r + (1 - b2) * sq.mean(1)
            c = b2 * c + (1 - b2) * sq.mean(0)
            u = g * _factored(r, c)
        else:
            v = b2 * v + (1 - b2) * sq
            u = g / v.sqrt()
        u = u / max(1.0, float(u.pow(2).mean().sqrt()) / clip)
        m = b1 * m + (1 - b1) * u
        if w.dim() == 2:
            res = (u - m) ** 2 + eps2
            rr = b3 * rr + (1 - b3) * res.mean(1)
            rc = b3 * rc + (1 - b3) * res.mean(0)
            step = m * _factored(rr, rc)
        else:
            step = m
        w = w * (1 - lr * wd) - lr * step
    return w


def _data(seed: int):
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def _run(cls, weights, grads, **kwargs):
    params = [nn.Parameter(w.clone()) for w in weights]
    opt = cls(params, **kwargs)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in params], opt


CASES = [
    (ADOPT, {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1},
     lambda w, g: ref_adopt(w, g, lr=0.05, b1=0.8, b2=0.95, eps=1e-6, wd=0.1, decoupled=False, caution=False)),
    (ADOPT, {"lr": 0.05, "betas": (0.8, 0.95), "weight_decay": 0.1, "decoupled_weight_decay": True,
             "cautious": True},
     lambda w, g: ref_adopt(w, g, lr=0.05, b1=0.8, b2=0.95, eps=1e-6, wd=0.1, decoupled=True, caution=True)),
    (AdEMAMix, {"lr": 0.05, "betas": (0.8, 0.9, 0.99), "alpha": 4.0, "weight_decay": 0.1},
     lambda w, g: ref_ademamix(w, g, lr=0.05, b1=0.8, b2=0.9, b3=0.99, alpha=4.0, eps=1e-8, wd=0.1, warmup=None,
                               caution=False)),
    (AdEMAMix, {"lr": 0.05, "betas": (0.8, 0.9, 0.99), "alpha": 4.0, "warmup_steps": 3, "cautious": True},
     lambda w, g: ref_ademamix(w, g, lr=0.05, b1=0.8, b2=0.9, b3=0.99, alpha=4.0, eps=1e-8, wd=0.0, warmup=3,
                               caution=True)),
    (LAMB, {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.1},
     lambda w, g: ref_lamb(w, g, lr=0.05, b1=0.8, b2=0.9, eps=1e-6, wd=0.1, caution=False)),
    (LAMB, {"lr": 0.05, "betas": (0.8, 0.9), "cautious": True},
     lambda w, g: ref_lamb(w, g, lr=0.05, b1=0.8, b2=0.9, eps=1e-6, wd=0.0, caution=True)),
    (Adan, {"lr": 0.05, "betas": (0.9, 0.8, 0.95), "weight_decay": 0.1},
     lambda w, g: ref_adan(w, g, lr=0.05, b1=0.9, b2=0.8, b3=0.95, eps=1e-8, wd=0.1, decoupled=False)),
    (Adan, {"lr": 0.05, "betas": (0.9, 0.8, 0.95), "weight_decay": 0.1, "decoupled_weight_decay": True},
     lambda w, g: ref_adan(w, g, lr=0.05, b1=0.9, b2=0.8, b3=0.95, eps=1e-8, wd=0.1, decoupled=True)),
    (StableAdamW, {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.1, "eps": 1e-2},
     lambda w, g: ref_stable_adamw(w, g, lr=0.05, b1=0.8, b2=0.9, eps=1e-2, wd=0.1)),
    (SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1},
     lambda w, g: ref_sgd(w, g, lr=0.05, mu=0.8, damp=0.0, nesterov=True, wd=0.1, decoupled=True)),
    (SGD, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1, "decoupled_weight_decay": False},
     lambda w, g: ref_sgd(w, g, lr=0.05, mu=0.8, damp=0.3, nesterov=False, wd=0.1, decoupled=False)),
]


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize(("cls", "kwargs", "reference"), CASES,
                         ids=[f"{c.name}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_update_matches_float64_reference(cls, kwargs, reference, fused: bool) -> None:
    weights, grads = _data(hash(cls.name) % 1000)
    got, _ = _run(cls, weights, grads, fused=fused, **kwargs)
    for i, w in enumerate(weights):
        expected = reference(w, [step[i] for step in grads])
        torch.testing.assert_close(got[i], expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("caution", [False, True])
def test_mars_matrices_corrected_and_vectors_plain_adamw(fused: bool, caution: bool) -> None:
    weights, grads = _data(7)
    got, _ = _run(MARS, weights, grads, lr=0.05, betas=(0.8, 0.9), betas_1d=(0.7, 0.85), gamma=0.1,
                  weight_decay=0.1, cautious=caution, fused=fused)
    matrix = ref_mars(weights[0], [s[0] for s in grads], lr=0.05, b1=0.8, b2=0.9, gamma=0.1, eps=1e-8, wd=0.1,
                      caution=caution)
    vector = ref_mars(weights[1], [s[1] for s in grads], lr=0.05, b1=0.7, b2=0.85, gamma=0.1, eps=1e-8, wd=0.1,
                      caution=caution, corrected=False)
    torch.testing.assert_close(got[0], matrix, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(got[1], vector, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("safeguard", [False, True])
def test_prodigy_matches_float64_reference_with_shared_d(safeguard: bool, fused: bool) -> None:
    weights, grads = _data(11)
    grads = [[g + 1.0 for g in step] for step in grads]  # a consistent descent direction, so d grows
    got, opt = _run(Prodigy, weights, grads, lr=1.0, betas=(0.8, 0.9), weight_decay=0.1, d0=1e-2,
                    safeguard_warmup=safeguard, fused=fused)
    expected, d = ref_prodigy([w.clone() for w in weights], grads, lr=1.0, b1=0.8, b2=0.9, eps=1e-8, wd=0.1, d0=1e-2,
                              safeguard=safeguard)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert opt.param_groups[0]["d"] == pytest.approx(d, rel=1e-12) and d > 1e-2


def test_came_matches_float64_reference() -> None:
    weights, grads = _data(13)
    got, _ = _run(CAME, weights, grads, lr=0.05, weight_decay=0.1, betas=(0.8, 0.9, 0.95))
    for i, w in enumerate(weights):
        expected = ref_came(w, [s[i] for s in grads], lr=0.05, b1=0.8, b2=0.9, b3=0.95, eps1=1e-30, eps2=1e-16,
                            clip=1.0, wd=0.1)
        torch.testing.assert_close(got[i], expected, rtol=1e-9, atol=1e-11)


def test_cautious_changes_the_trajectory_and_masks_disagreeing_signs() -> None:
    weights, grads = _data(3)
    plain, _ = _run(LAMB, weights, grads, lr=0.05)
    masked, _ = _run(LAMB, weights, grads, lr=0.05, cautious=True)
    assert not torch.allclose(plain[0], masked[0])
    u = torch.tensor([1.0, -1.0, 2.0, 0.5])
    g = torch.tensor([1.0, 1.0, -3.0, 2.0])
    torch.testing.assert_close(cautious(u, g), torch.tensor([4 / 3, 0.0, 0.0, 2 / 3], dtype=torch.float64))
    from swift_optim_zoo._elementwise import cautious_mask

    torch.testing.assert_close(u * cautious_mask(u, g, None), torch.tensor([4 / 3, 0.0, 0.0, 2 / 3]))


def test_fused_bf16_stays_bf16_and_close_to_eager() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 32, generator=gen).bfloat16()
    grads = [torch.randn(64, 32, generator=gen).bfloat16() for _ in range(3)]
    results = []
    for fused in (False, True):
        p = nn.Parameter(w.clone())
        opt = AdEMAMix([p], lr=1e-2, fused=fused)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        assert p.dtype == torch.bfloat16
        results.append(p.detach().float())
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=2e-2)


@pytest.mark.parametrize("name", ["adopt", "ademamix", "mars", "lamb", "adan", "prodigy", "stable_adamw", "sgd",
                                  "came"])
def test_registered_state_bytes_and_weights_only_resume(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 3))
    kwargs = {"lr": 1e-2} if name != "prodigy" else {}
    opt = swift_zoo.build_optimizer(name, model, **kwargs)
    x = torch.randn(4, 6)
    for _ in range(3):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    assert 0 < measure_state_bytes(opt) <= declared_state_bytes(opt)


@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (ADOPT, {"betas": (0.9, 1.0)}, r"optimizer 'adopt': betas\[1\] must be in \[0.0, 1.0\), got 1.0"),
    (AdEMAMix, {"betas": (0.9, 0.999)}, r"optimizer 'ademamix': betas must be 3 numbers in \[0, 1\)"),
    (LAMB, {"max_weight_norm": 0.0}, r"optimizer 'lamb': max_weight_norm must be > 0, got 0.0"),
    (SGD, {"nesterov": True, "momentum": 0.0}, r"optimizer 'sgd': nesterov=True needs momentum > 0 and dampening 0"),
    (Prodigy, {"growth_rate": 0.5}, r"optimizer 'prodigy': growth_rate must be in \[1.0, 1e\+30\], got 0.5"),
    (MARS, {"lr": float("nan")}, r"optimizer 'mars': lr must be a finite number >= 0, got nan"),
    (CAME, {"eps": 1e-30}, r"optimizer 'came': eps must be 2 numbers \(eps1, eps2\), got 1e-30"),
    (Adan, {"fused": "yes"}, r"optimizer 'adan': 'fused' must be a bool, got 'yes'"),
])
def test_bad_hyperparameters_are_refused_with_what_was_expected(cls, kwargs, message) -> None:
    with pytest.raises(swift_zoo.ConfigError, match=message):
        cls([nn.Parameter(torch.zeros(3, 3))], **kwargs)


# ------------------------------------------------------------------ cautious adamw and lion
def ref_cautious_adamw(w, grads, *, lr, b1, b2, eps, wd):
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        w = w * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * cautious((m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps), g)
    return w


def ref_cautious_lion(w, grads, *, lr, b1, b2, wd):
    m = torch.zeros_like(w)
    for g in grads:
        w = w * (1 - lr * wd) - lr * cautious(torch.sign(b1 * m + (1 - b1) * g), g)
        m = b2 * m + (1 - b2) * g
    return w


@pytest.mark.parametrize("fused", [False, True])
def test_cautious_adamw_and_lion_match_float64_references(fused: bool) -> None:
    from swift_optim_zoo.adamw import AdamW
    from swift_optim_zoo.lion import Lion

    weights, grads = _data(21)
    got, opt = _run(AdamW, weights, grads, lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, cautious=True, fused=fused)
    assert set(opt.state[next(iter(opt.state))]) == {"step", "exp_avg", "exp_avg_sq"}  # torch's layout
    for i, w in enumerate(weights):
        expected = ref_cautious_adamw(w, [s[i] for s in grads], lr=0.05, b1=0.8, b2=0.9, eps=1e-8, wd=0.1)
        torch.testing.assert_close(got[i], expected, rtol=1e-9, atol=1e-11)
    got, _ = _run(Lion, weights, grads, lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, cautious=True, fused=fused)
    for i, w in enumerate(weights):
        expected = ref_cautious_lion(w, [s[i] for s in grads], lr=0.05, b1=0.8, b2=0.9, wd=0.1)
        torch.testing.assert_close(got[i], expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["adamw", "lion", "adopt", "ademamix", "mars", "lamb"])
def test_cautious_option_passes_the_conformance_suite(name: str) -> None:
    from swift_zoo.testing import check_optimizer

    kwargs = {"lr": 1e-2, "cautious": True}
    report = check_optimizer(name, kwargs, on_fail="collect")
    failed = [(r.name, r.message) for r in report.results if r.status == "failed"]
    assert not failed, failed


# ------------------------------------------------------------------ records under sharding
@pytest.mark.parametrize("name", ["adamw", "lion", "adopt", "ademamix", "lamb", "mars"])
@pytest.mark.parametrize("fused", [False, True])
def test_cautious_narrows_the_distributed_record(name: str, fused: bool) -> None:
    """The mask's count is a whole-tensor sum: flat partitions are refused (before any step: at construction),
    FSDP2 stays supported with the eager rule; with fused=True FSDP2 runs eagerly where one process compiles, so
    its record says untested."""
    from swift_optim_zoo._catalogue._distributed import CAUTIOUS_COMPILED, TENSOR_SUMS

    model = torch.nn.Linear(4, 3)
    plain = swift_zoo.build_optimizer(name, model, lr=1e-2, fused=fused)
    careful = swift_zoo.build_optimizer(name, model, lr=1e-2, fused=fused, cautious=True)
    assert careful.distributed is (CAUTIOUS_COMPILED if fused else TENSOR_SUMS)
    assert careful.distributed.zero1_2.refused and careful.distributed.fsdp1_flat.refused
    assert careful.distributed.fsdp2.status == ("untested" if fused else "supported")
    assert plain.distributed is type(plain).distributed  # the class's record when the option is off


def test_whole_tensor_sums_decide_the_fsdp2_promise() -> None:
    """Element-wise rules are held bitwise under FSDP2, those that all-reduce a float sum within a tolerance."""
    from swift_optim_zoo.adamw import AdamW
    from swift_optim_zoo.lion import Lion
    from swift_zoo.optim import bitwise_under_fsdp2

    assert bitwise_under_fsdp2(Lion) and bitwise_under_fsdp2(AdamW) and bitwise_under_fsdp2(ADOPT)
    assert not any(bitwise_under_fsdp2(cls) for cls in (LAMB, StableAdamW, MARS, Prodigy))
    assert not bitwise_under_fsdp2(CAME)  # a statistics method: never bitwise


# ------------------------------------------------------------------ fused=True on float32 CPU tensors: the C kernels
def _no_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called for a float32 CPU step")

    monkeypatch.setattr(torch, "compile", refuse)


def _float32(weights, grads):
    """The data rounded to float32, and its float64 image (what the references compute from)."""
    weights32 = [w.float() for w in weights]
    grads32 = [[g.float() for g in step] for step in grads]
    return weights32, grads32, [w.double() for w in weights32], [[g.double() for g in step] for step in grads32]


# the C kernels of _native_elementwise.c (never a compilation) follow the float64 references to float32 rounding
F32 = {"rtol": 2e-4, "atol": 2e-5}


@pytest.mark.parametrize(("cls", "kwargs", "reference"), CASES,
                         ids=[f"{c.name}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_fused_float32_runs_the_c_kernel_and_matches_float64(cls, kwargs, reference,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _no_compile(monkeypatch)
    weights32, grads32, weights, grads = _float32(*_data(hash(cls.name) % 1000))
    calls = cls.kernel.native_calls
    got, _ = _run(cls, weights32, grads32, fused=True, **kwargs)
    assert cls.kernel.native_calls > calls
    for i, w in enumerate(weights):
        assert got[i].dtype == torch.float32
        torch.testing.assert_close(got[i].double(), reference(w, [step[i] for step in grads]), **F32)


@pytest.mark.parametrize("caution", [False, True])
def test_fused_float32_mars_prodigy_and_cautious_adamw_lion(caution: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from swift_optim_zoo.adamw import AdamW
    from swift_optim_zoo.lion import Lion

    _no_compile(monkeypatch)
    weights32, grads32, weights, grads = _float32(*_data(7))
    got, _ = _run(MARS, weights32, grads32, lr=0.05, betas=(0.8, 0.9), betas_1d=(0.7, 0.85), gamma=0.1,
                  weight_decay=0.1, cautious=caution, fused=True)
    torch.testing.assert_close(got[0].double(), ref_mars(weights[0], [s[0] for s in grads], lr=0.05, b1=0.8, b2=0.9,
                                                         gamma=0.1, eps=1e-8, wd=0.1, caution=caution), **F32)
    torch.testing.assert_close(got[1].double(), ref_mars(weights[1], [s[1] for s in grads], lr=0.05, b1=0.7, b2=0.85,
                                                         gamma=0.1, eps=1e-8, wd=0.1, caution=caution,
                                                         corrected=False), **F32)
    shifted32 = [[g + 1.0 for g in step] for step in grads32]
    got, opt = _run(Prodigy, weights32, shifted32, lr=1.0, betas=(0.8, 0.9), weight_decay=0.1, d0=1e-2,
                    safeguard_warmup=caution, fused=True)
    expected, d = ref_prodigy([w.clone() for w in weights], [[g.double() for g in step] for step in shifted32],
                              lr=1.0, b1=0.8, b2=0.9, eps=1e-8, wd=0.1, d0=1e-2, safeguard=caution)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a.double(), b, **F32)
    assert opt.param_groups[0]["d"] == pytest.approx(d, rel=1e-5)
    if not caution:
        return
    got, _ = _run(AdamW, weights32, grads32, lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, cautious=True, fused=True)
    for i, w in enumerate(weights):
        expected = ref_cautious_adamw(w, [s[i] for s in grads], lr=0.05, b1=0.8, b2=0.9, eps=1e-8, wd=0.1)
        torch.testing.assert_close(got[i].double(), expected, **F32)
    got, _ = _run(Lion, weights32, grads32, lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, cautious=True, fused=True)
    for i, w in enumerate(weights):
        expected = ref_cautious_lion(w, [s[i] for s in grads], lr=0.05, b1=0.8, b2=0.9, wd=0.1)
        torch.testing.assert_close(got[i].double(), expected, **F32)
