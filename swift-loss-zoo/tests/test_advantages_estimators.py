"""The registered advantage estimators against float64 loops over groups and tokens, and the conformance suite."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

import swift_zoo
from swift_loss_zoo.advantages import (
    DrGRPOAdvantage,
    GAEAdvantage,
    GDPOAdvantage,
    GRPOAdvantage,
    GRPOPassKAdvantage,
    OPOAdvantage,
    ReinforcePlusPlusAdvantage,
    ReinforcePlusPlusBaselineAdvantage,
    ReMaxAdvantage,
    RLOOAdvantage,
)
from swift_zoo import ConfigError, LossInputError
from swift_zoo.testing import parametrize_with_checks

F64 = torch.float64
NAMES = ("grpo", "dr_grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline", "remax", "opo", "gdpo",
         "grpo_passk", "gae")


def batch(seed, *, size=10, seq=6, functions=None):
    """Groups of 4, 3, 2 and 1 (shuffled ids), rewards with ties, ragged masks with a masked tool span."""
    g = torch.Generator().manual_seed(seed)
    shape = (size,) if functions is None else (size, functions)
    ids = torch.tensor([5, 5, 5, 5, 9, 9, 9, 2, 2, 7])[torch.randperm(size, generator=g)]
    lengths = torch.randint(1, seq + 1, (size,), generator=g)
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    mask[0, 0] = 0 if lengths[0] > 1 else 1
    return {
        "rewards": torch.randint(0, 3, shape, generator=g).to(F64) + 0.5 * torch.rand(shape, generator=g, dtype=F64)
        * (torch.rand(shape, generator=g) < 0.5),
        "group_ids": ids,
        "completion_mask": mask,
        "token_rewards": 0.1 * torch.randn(size, seq, generator=g, dtype=F64),
        "values": torch.randn(size, seq, generator=g, dtype=F64),
        "baseline_rewards": torch.rand(size, generator=g, dtype=F64),
    }


def members(ids):
    return {int(i): [j for j in range(len(ids)) if int(ids[j]) == int(i)] for i in ids}


def counted(mask, i):
    return [t for t in range(mask.shape[1]) if mask[i, t]]


def token_rewards(x, i):
    """{t: R_t} over counted tokens: token_rewards plus the score on the last counted token."""
    tokens = counted(x["completion_mask"], i)
    found = {t: float(x["token_rewards"][i, t]) for t in tokens}
    if tokens:
        found[tokens[-1]] += float(x["rewards"][i])
    return found


def whiten_tokens(values):
    """verl's masked_whiten over a list of per-token values: (v - mean) / sqrt(unbiased var + 1e-8)."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return lambda v: (v - mean) / math.sqrt(var + 1e-8)


def assert_close(actual, expected, rtol=1e-10, atol=1e-12):
    expected = torch.as_tensor(expected, dtype=F64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual.double(), expected, rtol=rtol, atol=atol), (actual, expected)


# ------------------------------------------------------------------- group estimators
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("scale", "unbiased", "eps"), [("group", True, 1e-6), ("group", False, 1e-4),
                                                        ("batch", True, 1e-6), ("none", True, 1e-6)])
def test_grpo(seed, scale, unbiased, eps):
    x = batch(seed)
    r = x["rewards"].tolist()
    expected = []
    for i, ids in enumerate(members(x["group_ids"])[int(x["group_ids"][i])] for i in range(10)):
        if len(ids) == 1:
            expected.append(0.0)
            continue
        group = [r[j] for j in ids]
        centred = r[i] - statistics.fmean(group)
        if scale == "group":
            centred /= (statistics.stdev(group) if unbiased else statistics.pstdev(group)) + eps
        elif scale == "batch":
            centred /= (statistics.stdev(r) if unbiased else statistics.pstdev(r)) + eps
        expected.append(centred)
    out = GRPOAdvantage(scale_rewards=scale, unbiased_std=unbiased, eps=eps)({k: x[k] for k in ("rewards",
                                                                                                 "group_ids")})
    assert_close(out, expected)
    if scale == "none":
        assert_close(DrGRPOAdvantage()({k: x[k] for k in ("rewards", "group_ids")}), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rloo_and_opo(seed):
    x = batch(seed)
    r, mask = x["rewards"].tolist(), x["completion_mask"]
    groups = members(x["group_ids"])
    rloo, opo = [], []
    for i in range(10):
        ids = groups[int(x["group_ids"][i])]
        if len(ids) == 1:
            rloo.append(0.0)
            opo.append(0.0)
            continue
        rloo.append(r[i] - sum(r[j] for j in ids if j != i) / (len(ids) - 1))
        lengths = {j: len(counted(mask, j)) for j in ids}
        opo.append(r[i] - sum(lengths[j] * r[j] for j in ids) / sum(lengths.values()))
    assert_close(RLOOAdvantage()({k: x[k] for k in ("rewards", "group_ids")}), rloo)
    assert_close(OPOAdvantage()({k: x[k] for k in ("rewards", "group_ids", "completion_mask")}), opo)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("scale", [True, False])
def test_grpo_passk(seed, scale):
    x = batch(seed)
    r = x["rewards"].tolist()
    expected = [0.0] * 10
    for ids in members(x["group_ids"]).values():
        if len(ids) < 2:
            continue
        ordered = sorted(ids, key=lambda j: r[j], reverse=True)
        lead = r[ordered[0]] - r[ordered[1]]
        if scale:
            lead /= statistics.stdev([r[j] for j in ids]) + 1e-6
        if r[ordered[0]] != r[ordered[1]]:
            expected[ordered[0]] = lead
    out = GRPOPassKAdvantage(scale_rewards=scale)({k: x[k] for k in ("rewards", "group_ids")})
    assert_close(out, expected)
    assert int((out != 0).sum()) <= 3  # at most one response per group of 2+


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("weights", [None, (1.0, 0.5, -2.0)])
@pytest.mark.parametrize("scale", [True, False])
def test_gdpo(seed, weights, scale):
    x = batch(seed, functions=3)
    r, mask = x["rewards"].tolist(), x["completion_mask"]
    groups = members(x["group_ids"])
    summed = []
    for i in range(10):
        ids = groups[int(x["group_ids"][i])]
        total = 0.0
        for k in range(3):
            if len(ids) == 1:
                continue
            column = [r[j][k] for j in ids]
            value = r[i][k] - statistics.fmean(column)
            if scale:
                value /= statistics.stdev(column) + 1e-6
            total += (1.0 if weights is None else weights[k]) * value
        summed.append(total)
    per_token = [summed[i] for i in range(10) for _ in counted(mask, i)]
    white = whiten_tokens(per_token)
    expected = [white(summed[i]) if counted(mask, i) else 0.0 for i in range(10)]
    out = GDPOAdvantage(reward_weights=weights, scale_rewards=scale)({k: x[k] for k in ("rewards", "group_ids",
                                                                                        "completion_mask")})
    assert_close(out, expected)


def test_gdpo_weights_must_match_the_reward_columns():
    x = batch(0, functions=2)
    with pytest.raises(LossInputError, match=r"gdpo: reward_weights has 3 weights.*got \(10, 2\)"):
        GDPOAdvantage(reward_weights=(1.0, 1.0, 1.0))({k: x[k] for k in ("rewards", "group_ids", "completion_mask")})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reinforce_plus_plus_baseline(seed):
    x = batch(seed)
    mask = x["completion_mask"]
    groups = members(x["group_ids"])
    scores = [sum(token_rewards(x, i).values()) for i in range(10)]
    centred = []
    for i in range(10):
        ids = groups[int(x["group_ids"][i])]
        centred.append(0.0 if len(ids) == 1 else scores[i] - statistics.fmean(scores[j] for j in ids))
    white = whiten_tokens([centred[i] for i in range(10) for _ in counted(mask, i)])
    expected = [white(centred[i]) for i in range(10)]
    keys = ("rewards", "token_rewards", "group_ids", "completion_mask")
    assert_close(ReinforcePlusPlusBaselineAdvantage()({k: x[k] for k in keys}), expected)


# ------------------------------------------------------------------- token estimators
def returns_of(x, i, gamma):
    rewards = token_rewards(x, i)
    tokens = sorted(rewards)
    found, running = {}, 0.0
    for t in reversed(tokens):
        running = rewards[t] + gamma * running
        found[t] = running
    return found


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_reinforce_plus_plus(seed, gamma):
    x = batch(seed)
    returns = [returns_of(x, i, gamma) for i in range(10)]
    white = whiten_tokens([v for row in returns for v in row.values()])
    expected = torch.zeros(10, 6, dtype=F64)
    for i, row in enumerate(returns):
        for t, v in row.items():
            expected[i, t] = white(v)
    out = ReinforcePlusPlusAdvantage(gamma=gamma)({k: x[k] for k in ("rewards", "token_rewards", "completion_mask")})
    assert_close(out, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_remax(seed):
    x = batch(seed)
    expected = torch.zeros(10, 6, dtype=F64)
    for i in range(10):
        for t, v in returns_of(x, i, 1.0).items():
            expected[i, t] = v - float(x["baseline_rewards"][i])
    keys = ("rewards", "baseline_rewards", "token_rewards", "completion_mask")
    assert_close(ReMaxAdvantage()({k: x[k] for k in keys}), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("gamma", "lam", "whiten"), [(1.0, 0.95, True), (0.9, 0.8, False)])
def test_gae_and_its_returns(seed, gamma, lam, whiten):
    x = batch(seed)
    raw = torch.zeros(10, 6, dtype=F64)
    returns = torch.zeros(10, 6, dtype=F64)
    for i in range(10):
        rewards = token_rewards(x, i)
        tokens = sorted(rewards)
        running, next_value = 0.0, 0.0
        for t in reversed(tokens):
            value = float(x["values"][i, t])
            running = rewards[t] + gamma * next_value - value + gamma * lam * running
            next_value = value
            raw[i, t], returns[i, t] = running, running + value
    expected = raw
    if whiten:
        white = whiten_tokens([float(raw[i, t]) for i in range(10) for t in counted(x["completion_mask"], i)])
        expected = torch.tensor([[white(float(raw[i, t])) if x["completion_mask"][i, t] else 0.0 for t in range(6)]
                                 for i in range(10)], dtype=F64)
    estimator = GAEAdvantage(gamma=gamma, lam=lam, whiten=whiten)
    out = estimator({k: x[k] for k in ("rewards", "token_rewards", "values", "completion_mask")})
    assert_close(out, expected)
    assert_close(estimator.outputs["returns"], returns)


# ------------------------------------------------------------------- registry, config, conformance
def test_swift_zoo_lists_every_estimator():
    assert {e.name for e in swift_zoo.list_advantages() if e.distribution == "swift-loss-zoo"} == set(NAMES)


def test_config_builds_an_estimator_and_rejects_bad_kwargs():
    built = swift_zoo.build_from_config({"training_args": {"loss_type": "grpo", "advantage_type": "grpo",
                                                           "advantage_kwargs": {"scale_rewards": "batch",
                                                                                "eps": "1e-4"}}})
    assert isinstance(built.advantage, GRPOAdvantage) and built.advantage.eps == 1e-4
    with pytest.raises(ConfigError, match="'scale_rewards' expects one of 'group', 'batch', 'none'"):
        swift_zoo.build_advantage("grpo", scale_rewards="std")
    with pytest.raises(ConfigError, match=r"^gae: gamma must be in \[0.0, 1.0\], got 1.5$"):
        swift_zoo.build_advantage("gae", gamma=1.5)


def test_equal_rewards_give_zero_advantages_and_singletons_zero():
    x = batch(0)
    x["rewards"] = torch.full((10,), 2.0, dtype=F64)
    for cls in (GRPOAdvantage, RLOOAdvantage, GRPOPassKAdvantage, DrGRPOAdvantage):
        assert torch.all(cls()({k: x[k] for k in ("rewards", "group_ids")}) == 0), cls.name
    x["group_ids"] = torch.arange(10)
    assert torch.all(GRPOAdvantage()({k: x[k] for k in ("rewards", "group_ids")}) == 0)


@parametrize_with_checks([swift_zoo.get_advantage(name) for name in NAMES])
def test_conformance(subject, check):
    check(subject)


def test_cli_lists_and_describes_the_estimators():
    import io
    import json

    from swift_zoo._cli.main import main

    out = io.StringIO()
    assert main(["list", "advantages", "--json"], out=out) == 0
    listed = {row["name"] for row in json.loads(out.getvalue()) if row["distribution"] == "swift-loss-zoo"}
    assert listed == set(NAMES)
    out = io.StringIO()
    assert main(["info", "gae", "--kind", "advantages"], out=out) == 0
    text = out.getvalue()
    assert "level: token" in text and "verl algorithm.adv_estimator='gae'" in text and "values [B, T]" in text
