"""SimPO, CPO, AlphaPO and ORPO against independent float64 formulas (plain ``math``, explicit loops).

Gradients are checked against central finite differences of the same plain-math reference.
"""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_zoo import ConfigError

SEEDS = (0, 1, 2)
BATCH_SIZES = (1, 3, 6)


# ------------------------------------------------------------------ plain-math references
def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def smoothed(z: float, eps: float) -> float:
    return -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z)


def simpo_pair(sc, sr, nc, nr, *, beta=2.0, gamma_beta_ratio=0.5, label_smoothing=0.0, sft_weight=0.0):
    ac, ar = sc / nc, sr / nr
    gamma = gamma_beta_ratio * beta
    return smoothed(beta * ac - beta * ar - gamma, label_smoothing) + sft_weight * (-ac)


def cpo_pair(sc, sr, nc, nr, *, beta=0.1, label_smoothing=0.0, cpo_alpha=1.0, loss_type="sigmoid"):
    if loss_type == "sigmoid":
        pref = smoothed(beta * (sc - sr), label_smoothing)
    elif loss_type == "hinge":
        pref = max(0.0, 1 - beta * (sc - sr))
    else:
        pref = (sc / nc - sr / nr - 1 / (2 * beta)) ** 2
    return pref + cpo_alpha * (-sc / nc)


def alphapo_pair(sc, sr, nc, nr, *, alpha=0.25, beta=2.0, gamma_beta_ratio=0.5, label_smoothing=0.0, sft_weight=0.0):
    def reward(s, n):
        p = math.exp(s / n)
        return s / n if alpha == 0 else (1 - p ** (-alpha)) / alpha

    z = beta * (reward(sc, nc) - reward(sr, nr)) - gamma_beta_ratio * beta
    return smoothed(z, label_smoothing) + sft_weight * (-sc / nc)


def orpo_pair(sc, sr, nc, nr, *, beta=0.1):
    ac, ar = sc / nc, sr / nr
    log_odds = (ac - ar) - (math.log(1 - math.exp(ac)) - math.log(1 - math.exp(ar)))
    return -ac - beta * log_sigmoid(log_odds)


REFERENCES = {"simpo": simpo_pair, "cpo": cpo_pair, "alphapo": alphapo_pair, "orpo": orpo_pair}

CASES = [
    ("simpo", {}),
    ("simpo", {"beta": 2.5, "gamma_beta_ratio": 0.3, "label_smoothing": 0.1, "sft_weight": 0.5}),
    ("cpo", {}),
    ("cpo", {"beta": 0.5, "label_smoothing": 0.2, "cpo_alpha": 0.0}),
    ("cpo", {"loss_type": "hinge", "beta": 0.3}),
    ("cpo", {"loss_type": "ipo", "beta": 0.5, "cpo_alpha": 0.3}),
    ("alphapo", {}),
    ("alphapo", {"alpha": -0.5, "beta": 1.5, "gamma_beta_ratio": 0.2, "label_smoothing": 0.05}),
    ("alphapo", {"alpha": 0.0, "sft_weight": 0.2}),
    ("orpo", {}),
    ("orpo", {"beta": 0.7}),
]


def reference_loss(name, kwargs, sc, sr, nc, nr):
    pairs = [REFERENCES[name](sc[i], sr[i], nc[i], nr[i], **kwargs) for i in range(len(sc)) if nc[i] > 0 and nr[i] > 0]
    return sum(pairs) / max(len(pairs), 1)


def make_batch(seed: int, batch_size: int):
    gen = torch.Generator().manual_seed(seed)
    nc = torch.randint(1, 15, (batch_size,), generator=gen)
    nr = torch.randint(1, 15, (batch_size,), generator=gen)
    sc = (-0.2 - 2.0 * torch.rand(batch_size, generator=gen, dtype=torch.float64)) * nc
    sr = (-0.2 - 2.0 * torch.rand(batch_size, generator=gen, dtype=torch.float64)) * nr
    return sc, sr, nc, nr


def finite_difference(fn, values: list[float], h: float = 1e-6) -> list[float]:
    grads = []
    for i in range(len(values)):
        up, down = list(values), list(values)
        up[i] += h
        down[i] -= h
        grads.append((fn(up) - fn(down)) / (2 * h))
    return grads


def run_loss(loss, sc, sr, nc, nr, **kw):
    sc, sr = sc.clone().requires_grad_(True), sr.clone().requires_grad_(True)
    value = loss({"policy_chosen_logps": sc, "policy_rejected_logps": sr, "chosen_lengths": nc,
                  "rejected_lengths": nr}, **kw)
    value.backward()
    return value, sc.grad, sr.grad


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
@pytest.mark.parametrize("seed", SEEDS)
def test_value_and_gradients_match_float64_formula(name, kwargs, seed):
    batch_size = BATCH_SIZES[seed % len(BATCH_SIZES)]
    sc, sr, nc, nr = make_batch(seed, batch_size)
    loss = swift_zoo.build_loss(name, **kwargs)
    value, grad_c, grad_r = run_loss(loss, sc, sr, nc, nr)

    sc_l, sr_l, nc_l, nr_l = sc.tolist(), sr.tolist(), nc.tolist(), nr.tolist()
    expected = reference_loss(name, kwargs, sc_l, sr_l, nc_l, nr_l)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)

    expected_c = finite_difference(lambda v: reference_loss(name, kwargs, v, sr_l, nc_l, nr_l), sc_l)
    expected_r = finite_difference(lambda v: reference_loss(name, kwargs, sc_l, v, nc_l, nr_l), sr_l)
    torch.testing.assert_close(grad_c, torch.tensor(expected_c, dtype=torch.float64), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(grad_r, torch.tensor(expected_r, dtype=torch.float64), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_float32_matches_float64(name):
    sc, sr, nc, nr = make_batch(7, 5)
    loss = swift_zoo.build_loss(name)
    v64, gc64, gr64 = run_loss(loss, sc, sr, nc, nr)
    v32, gc32, gr32 = run_loss(loss, sc.float(), sr.float(), nc, nr)
    assert v32.dtype == torch.float32
    assert v32.item() == pytest.approx(v64.item(), rel=1e-5)
    torch.testing.assert_close(gc32.double(), gc64, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gr32.double(), gr64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_empty_completions_are_not_counted(name):
    sc, sr, nc, nr = make_batch(3, 4)
    nc[1] = 0
    sc[1] = 0.0
    nr[3] = 0
    sr[3] = 0.0
    loss = swift_zoo.build_loss(name)
    value, grad_c, grad_r = run_loss(loss, sc, sr, nc, nr)
    expected = reference_loss(name, {}, sc.tolist(), sr.tolist(), nc.tolist(), nr.tolist())
    assert value.item() == pytest.approx(expected, rel=1e-10)
    assert loss.count_units({"policy_chosen_logps": sc, "policy_rejected_logps": sr, "chosen_lengths": nc,
                             "rejected_lengths": nr}).item() == 2
    assert grad_c[1] == 0 and grad_r[1] == 0 and grad_c[3] == 0 and grad_r[3] == 0
    assert torch.isfinite(grad_c).all() and torch.isfinite(grad_r).all()


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_microbatch_split_with_global_count_is_exact(name):
    sc, sr, nc, nr = make_batch(11, 6)
    loss = swift_zoo.build_loss(name)
    full, full_c, full_r = run_loss(loss, sc, sr, nc, nr)
    parts = [run_loss(loss, sc[a:b], sr[a:b], nc[a:b], nr[a:b], num_items_in_batch=6) for a, b in ((0, 2), (2, 6))]
    assert sum(p[0].item() for p in parts) == pytest.approx(full.item(), rel=1e-12)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), full_c)
    torch.testing.assert_close(torch.cat([p[2] for p in parts]), full_r)


def test_simpo_gamma_is_ratio_times_beta():
    # SimPO with gamma_beta_ratio r is TRL's simpo with simpo_gamma = r * beta: at equal averages the loss is
    # -log sigmoid(-gamma)
    loss = swift_zoo.build_loss("simpo", beta=2.0, gamma_beta_ratio=0.5)
    value = loss({"policy_chosen_logps": torch.tensor([-4.0]), "policy_rejected_logps": torch.tensor([-8.0]),
                  "chosen_lengths": torch.tensor([2]), "rejected_lengths": torch.tensor([4])})
    assert value.item() == pytest.approx(-log_sigmoid(-1.0), rel=1e-6)


def test_alphapo_at_alpha_zero_is_simpo():
    sc, sr, nc, nr = make_batch(5, 4)
    alpha0 = run_loss(swift_zoo.build_loss("alphapo", alpha=0.0), sc, sr, nc, nr)
    simpo = run_loss(swift_zoo.build_loss("simpo"), sc, sr, nc, nr)
    for a, b in zip(alpha0, simpo):
        torch.testing.assert_close(a, b)
    tiny = run_loss(swift_zoo.build_loss("alphapo", alpha=1e-9), sc, sr, nc, nr)
    assert tiny[0].item() == pytest.approx(simpo[0].item(), rel=1e-6)


def test_metrics_are_rewards_margin_accuracy():
    loss = swift_zoo.build_loss("cpo", beta=0.5)
    sc, sr = torch.tensor([-2.0, -6.0]), torch.tensor([-4.0, -3.0])
    n = torch.tensor([2, 2])
    loss({"policy_chosen_logps": sc, "policy_rejected_logps": sr, "chosen_lengths": n, "rejected_lengths": n})
    metrics = loss.metrics
    assert metrics["chosen_reward"].item() == pytest.approx(0.5 * (-8.0) / 2)
    assert metrics["rejected_reward"].item() == pytest.approx(0.5 * (-7.0) / 2)
    assert metrics["reward_margin"].item() == pytest.approx(0.5 * (2.0 - 3.0) / 2)
    assert metrics["reward_accuracy"].item() == pytest.approx(0.5)
    assert metrics["nll_chosen"].item() == pytest.approx((1.0 + 3.0) / 2)


@pytest.mark.parametrize(
    ("name", "kwargs", "key", "expected"),
    [
        ("simpo", {"beta": 0.0}, "beta", "> 0"),
        ("simpo", {"beta": -1.0}, "beta", "> 0"),
        ("simpo", {"label_smoothing": 0.5}, "label_smoothing", "in [0.0, 0.5)"),
        ("simpo", {"sft_weight": -0.1}, "sft_weight", ">= 0"),
        ("simpo", {"gamma_beta_ratio": float("nan")}, "gamma_beta_ratio", "a finite number"),
        ("cpo", {"loss_type": "simpo"}, "loss_type", "sigmoid | hinge | ipo"),
        ("cpo", {"cpo_alpha": -1.0}, "cpo_alpha", ">= 0"),
        ("cpo", {"loss_type": "hinge", "label_smoothing": 0.1}, "label_smoothing", "0.0 with loss_type hinge"),
        ("alphapo", {"alpha": float("inf")}, "alpha", "a finite number"),
        ("alphapo", {"beta": float("nan")}, "beta", "a finite number > 0"),
        ("alphapo", {"label_smoothing": -0.1}, "label_smoothing", "in [0.0, 0.5)"),
        ("orpo", {"beta": 0.0}, "beta", "> 0"),
    ],
)
def test_hyperparameter_validation(name, kwargs, key, expected):
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss(name, **kwargs)
    error = info.value
    assert error.key == key and error.expected == expected
    assert error.found is kwargs[key] or error.found == kwargs[key]
    assert name in str(error) and key in str(error) and repr(kwargs[key]) in str(error)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_build_loss_and_metadata(name):
    loss = swift_zoo.build_loss(name)
    assert loss.name == name
    assert loss.reduction_unit == "pair"
    assert loss.reference.startswith("arXiv:")
    # orpo also declares the optional prompt inputs of nll_convention="trl"
    prompt = {"policy_chosen_prompt_logps", "chosen_prompt_lengths"} if name == "orpo" else set()
    assert {spec.key for spec in loss.inputs} == {
        "policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"} | prompt
