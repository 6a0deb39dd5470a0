"""The ``sft`` term, TRL's MPO as ``weighted_sum``, and ORPO's NLL options, against float64 formulas."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_zoo import ConfigError, LossInputError
from swift_zoo.testing import check_loss


def log_sig(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def log1mexp(x: float) -> float:
    return math.log(-math.expm1(x))


def example(name: str, seed: int = 0, batch_size: int = 5) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return swift_zoo.get_loss(name).example_inputs(batch_size=batch_size, generator=generator,
                                                   dtype=torch.float64).model_outputs


def floats(outputs, key) -> list[float]:
    return [float(v) for v in outputs[key]]


# -------------------------------------------------------------------------------------------------- sft
def test_sft_is_minus_the_mean_chosen_token_log_prob():
    outputs = example("sft")
    leaf = outputs["policy_chosen_logps"].clone().requires_grad_(True)
    loss = swift_zoo.build_loss("sft")
    value = loss({**outputs, "policy_chosen_logps": leaf})
    value.backward()
    summed, lengths = floats(outputs, "policy_chosen_logps"), floats(outputs, "chosen_lengths")
    assert value.item() == pytest.approx(-sum(summed) / sum(lengths), rel=1e-12)
    assert leaf.grad.tolist() == pytest.approx([-1.0 / sum(lengths)] * len(summed), rel=1e-12)
    assert int(loss.count_units(outputs)) == int(sum(lengths))
    assert loss.metrics["nll"].item() == pytest.approx(value.item(), rel=1e-12)
    assert loss(outputs, num_items_in_batch=100).item() == pytest.approx(-sum(summed) / 100, rel=1e-12)


def test_sft_splits_exactly_and_ignores_empty_completions():
    outputs = example("sft", batch_size=6)
    loss = swift_zoo.build_loss("sft")
    total = int(loss.count_units(outputs))
    parts = [{k: v[a:b] for k, v in outputs.items()} for a, b in ((0, 2), (2, 6))]
    split = sum(loss(part, num_items_in_batch=total) for part in parts)
    assert split.item() == pytest.approx(loss(outputs).item(), rel=1e-12)
    empty = dict(outputs)
    empty["chosen_lengths"] = outputs["chosen_lengths"].clone()
    empty["chosen_lengths"][0] = 0
    empty["policy_chosen_logps"] = outputs["policy_chosen_logps"].clone()
    empty["policy_chosen_logps"][0] = 0.0
    kept = {k: v[1:] for k, v in outputs.items()}
    assert loss(empty).item() == pytest.approx(loss(kept).item(), rel=1e-12)


def test_sft_passes_the_conformance_suite():
    check_loss("sft")


def test_mpo_is_a_weighted_sum_of_sigmoid_bco_pair_and_sft():
    """TRL's MPO: 0.8 mean(-log sig(beta D)) + 0.2 mean(-log sig(beta c) - log sig(-beta r)) + 1.0 (-sum S / sum n)."""
    outputs = example("dpo", seed=3)
    mpo = swift_zoo.build_loss("weighted_sum", losses=[
        {"type": "dpo", "weight": 0.8}, {"type": "bco_pair", "weight": 0.2}, {"type": "sft", "weight": 1.0}])
    sc, sr = floats(outputs, "policy_chosen_logps"), floats(outputs, "policy_rejected_logps")
    rc, rr = floats(outputs, "reference_chosen_logps"), floats(outputs, "reference_rejected_logps")
    nc = floats(outputs, "chosen_lengths")
    n = len(sc)
    sigmoid = sum(-log_sig(0.1 * ((a - b) - (c - d))) for a, b, c, d in zip(sc, rc, sr, rr)) / n
    bco = sum(-log_sig(0.1 * (a - b)) - log_sig(-0.1 * (c - d)) for a, b, c, d in zip(sc, rc, sr, rr)) / n
    sft = -sum(sc) / sum(nc)
    assert mpo(outputs).item() == pytest.approx(0.8 * sigmoid + 0.2 * bco + sft, rel=1e-12)
    counts = mpo.count_units(outputs)
    assert counts.tolist() == [n, n, int(sum(nc))]


# ------------------------------------------------------------------------------------------------- ORPO
def orpo_terms(outputs, beta=0.1):
    sc, sr = floats(outputs, "policy_chosen_logps"), floats(outputs, "policy_rejected_logps")
    nc, nr = floats(outputs, "chosen_lengths"), floats(outputs, "rejected_lengths")
    odds = []
    for a, b, c, d in zip(sc, sr, nc, nr):
        ac, ar = a / c, b / d
        odds.append(-beta * log_sig((ac - ar) - (log1mexp(ac) - log1mexp(ar))))
    return odds, [-a / c for a, c in zip(sc, nc)]


def test_orpo_nll_weight_zero_leaves_the_odds_ratio_term():
    outputs = example("orpo")
    odds, nll = orpo_terms(outputs)
    n = len(odds)
    assert swift_zoo.build_loss("orpo", nll_weight=0.0)(outputs).item() == pytest.approx(sum(odds) / n, rel=1e-10)
    half = swift_zoo.build_loss("orpo", nll_weight=0.5)(outputs).item()
    assert half == pytest.approx(sum(o + 0.5 * x for o, x in zip(odds, nll)) / n, rel=1e-10)
    assert swift_zoo.build_loss("orpo")(outputs).item() == pytest.approx(sum(o + x for o, x in zip(odds, nll)) / n,
                                                                         rel=1e-10)


def test_orpo_trl_convention_averages_prompt_and_completion_tokens_over_the_batch():
    outputs = example("orpo", seed=1)
    odds, _ = orpo_terms(outputs)
    sc, pc = floats(outputs, "policy_chosen_logps"), floats(outputs, "policy_chosen_prompt_logps")
    nc, mc = floats(outputs, "chosen_lengths"), floats(outputs, "chosen_prompt_lengths")
    expected = sum(odds) / len(odds) - (sum(sc) + sum(pc)) / (sum(nc) + sum(mc))
    loss = swift_zoo.build_loss("orpo", nll_convention="trl")
    leaf = outputs["policy_chosen_prompt_logps"].clone().requires_grad_(True)
    value = loss({**outputs, "policy_chosen_prompt_logps": leaf})
    assert value.item() == pytest.approx(expected, rel=1e-10)
    value.backward()
    assert leaf.grad.tolist() == pytest.approx([-1.0 / (sum(nc) + sum(mc))] * len(sc), rel=1e-10)
    assert loss.reduction_unit == "batch" and int(loss.count_units(outputs)) == 1 and loss.batch_dependent
    assert loss(outputs, num_items_in_batch=4).item() == pytest.approx(expected / 4, rel=1e-10)


def test_orpo_ms_swift_convention_averages_completion_tokens_over_the_batch():
    outputs = example("orpo", seed=2)
    odds, _ = orpo_terms(outputs)
    sc, nc = floats(outputs, "policy_chosen_logps"), floats(outputs, "chosen_lengths")
    expected = sum(odds) / len(odds) - sum(sc) / sum(nc)
    loss = swift_zoo.build_loss("orpo", nll_convention="ms_swift")
    del outputs["policy_chosen_prompt_logps"], outputs["chosen_prompt_lengths"]
    assert loss(outputs).item() == pytest.approx(expected, rel=1e-10)


def test_orpo_options_are_validated():
    outputs = example("orpo")
    del outputs["chosen_prompt_lengths"]
    with pytest.raises(LossInputError) as info:
        swift_zoo.build_loss("orpo", nll_convention="trl")(outputs)
    assert "chosen_prompt_lengths" in str(info.value)
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("orpo", nll_convention="TRL")
    assert info.value.key == "nll_convention" and "'pair', 'trl', 'ms_swift'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("orpo", nll_weight=-1.0)
    assert info.value.key == "nll_weight"


@pytest.mark.parametrize("kwargs", [{"nll_weight": 0.0}, {"nll_convention": "trl"}, {"nll_convention": "ms_swift"}])
def test_orpo_options_pass_the_conformance_suite(kwargs):
    check_loss(swift_zoo.build_loss("orpo", **kwargs))
