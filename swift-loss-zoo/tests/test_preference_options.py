"""The DPO family's options -- f-divergence, LD-DPO, WPO -- against independent float64 formulas.

References are plain Python floats, one pair at a time, written from the papers / TRL 1.x's definitions;
their gradients are central finite differences, so nothing shares code or autograd with the implementation.
"""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_loss_zoo.preference import DpoLoss, ld_tail_logps, sequence_log_sum_sq_probs
from swift_zoo import ConfigError, LossInputError
from swift_zoo.testing import check_loss


def log_sig(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def score(kind: str, log_ratio: float, alpha: float = 0.5) -> float:
    """f'(e^log_ratio) up to a constant (Wang et al., arXiv:2309.16240, Table 1)."""
    if kind == "reverse_kl":
        return log_ratio
    if kind == "forward_kl":
        return 1.0 - math.exp(-log_ratio)
    if kind == "js_divergence":
        return math.log(2.0) + log_sig(log_ratio)
    return (math.exp((alpha - 1.0) * log_ratio) - 1.0) / (alpha - 1.0)


def pairs_of(outputs: dict[str, torch.Tensor]) -> list[dict[str, float]]:
    keys = {"sc": "policy_chosen_logps", "sr": "policy_rejected_logps", "rc": "reference_chosen_logps",
            "rr": "reference_rejected_logps", "nc": "chosen_lengths", "nr": "rejected_lengths",
            "tsc": "policy_chosen_tail_logps", "tsr": "policy_rejected_tail_logps",
            "trc": "reference_chosen_tail_logps", "trr": "reference_rejected_tail_logps",
            "qc": "policy_chosen_log_sum_sq_probs", "qr": "policy_rejected_log_sum_sq_probs"}
    size = outputs["policy_chosen_logps"].shape[0]
    return [{short: float(outputs[key][i]) for short, key in keys.items()} for i in range(size)]


def example(name: str, seed: int = 0, batch_size: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    cls = swift_zoo.get_loss(name)
    return cls.example_inputs(batch_size=batch_size, generator=generator, dtype=torch.float64).model_outputs


def check_against(name: str, kwargs: dict, reference, outputs: dict[str, torch.Tensor], *,
                  gradient_of_reference=None) -> None:
    """Value and the gradients w.r.t. the policy summed log-probs (``sc``, ``sr``) against ``reference``."""
    pairs = pairs_of(outputs)
    expected = sum(reference(p) for p in pairs) / len(pairs)
    leaves = {key: outputs[key].clone().requires_grad_(True) for key in ("policy_chosen_logps", "policy_rejected_logps")}
    loss = swift_zoo.build_loss(name, **kwargs)({**outputs, **leaves})
    loss.backward()
    assert loss.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    h = 1e-6
    for short, key in (("sc", "policy_chosen_logps"), ("sr", "policy_rejected_logps")):
        for i, p in enumerate(pairs):
            if gradient_of_reference is not None:
                expected_grad = gradient_of_reference(p, short) / len(pairs)
            else:
                up, down = dict(p), dict(p)
                up[short] += h
                down[short] -= h
                expected_grad = (reference(up) - reference(down)) / (2 * h) / len(pairs)
            assert leaves[key].grad[i].item() == pytest.approx(expected_grad, rel=1e-5, abs=1e-8), (short, i)


# ---------------------------------------------------------------------------------------- f-divergence
F_KINDS = [("reverse_kl", {}), ("forward_kl", {}), ("js_divergence", {}),
           ("alpha_divergence", {"f_alpha_divergence_coef": 0.3}),
           ("alpha_divergence", {"f_alpha_divergence_coef": 1.7})]


@pytest.mark.parametrize(("kind", "extra"), F_KINDS, ids=[f"{k}{e}" for k, e in F_KINDS])
def test_f_divergence_dpo_hinge_and_ipo(kind, extra):
    alpha = extra.get("f_alpha_divergence_coef", 0.5)
    kwargs = {"beta": 0.2, "f_divergence_type": kind, **extra}
    outputs = example("dpo")

    def margin(p):
        return score(kind, p["sc"] - p["rc"], alpha) - score(kind, p["sr"] - p["rr"], alpha)

    check_against("dpo", kwargs, lambda p: -log_sig(0.2 * margin(p)), outputs)
    check_against("hinge", kwargs, lambda p: max(0.0, 1.0 - 0.2 * margin(p)), outputs)

    def ipo(p):
        averaged = score(kind, p["sc"] - p["rc"], alpha) / p["nc"] - score(kind, p["sr"] - p["rr"], alpha) / p["nr"]
        return (averaged - 1.0 / (2 * 0.2)) ** 2

    check_against("ipo", kwargs, ipo, outputs)


def test_alpha_divergence_legacy_spelling_is_one_minus_alpha():
    """TRL <= 0.28 / ms-swift: margin (e^{-a r} - e^{-a c}) / a, i.e. TRL 1.x's alpha = 1 - a."""
    outputs = example("dpo", seed=3)
    a = 0.3

    def legacy(p):
        c, r = p["sc"] - p["rc"], p["sr"] - p["rr"]
        return -log_sig(0.1 * (math.exp(-a * r) - math.exp(-a * c)) / a)

    kwargs = {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": a,
              "f_alpha_divergence_convention": "trl_legacy"}
    check_against("dpo", kwargs, legacy, outputs)
    same = swift_zoo.build_loss("dpo", f_divergence_type="alpha_divergence", f_alpha_divergence_coef=1 - a)
    assert same(outputs).item() == pytest.approx(swift_zoo.build_loss("dpo", **kwargs)(outputs).item(), rel=1e-12)


def test_alpha_one_is_the_reverse_kl_and_reverse_kl_is_plain_dpo():
    outputs = example("dpo", seed=4)
    plain = swift_zoo.build_loss("dpo")(outputs)
    assert swift_zoo.build_loss("dpo", f_divergence_type="alpha_divergence",
                                f_alpha_divergence_coef=1.0)(outputs).item() == plain.item()
    assert swift_zoo.build_loss("dpo", f_divergence_type="reverse_kl")(outputs).item() == plain.item()


@pytest.mark.parametrize("name", ["dpo", "ipo", "hinge", "dpo_norm", "robust_dpo", "exo_pair", "discopop"])
@pytest.mark.parametrize(("kind", "extra"), [("forward_kl", {}), ("alpha_divergence", {"f_alpha_divergence_coef": -1.0})])
def test_f_divergence_stays_finite_at_extreme_log_ratios(name, kind, extra):
    outputs = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in example(name).items()}
    outputs["policy_chosen_logps"] = torch.tensor([-3e4, 5e3, -20.0, 3e4, -1e3, 0.0])
    outputs["policy_rejected_logps"] = torch.tensor([5e3, -3e4, -2e4, -10.0, 1e3, 0.0])
    leaves = {key: outputs[key].clone().requires_grad_(True) for key in ("policy_chosen_logps", "policy_rejected_logps")}
    loss = swift_zoo.build_loss(name, f_divergence_type=kind, **extra)({**outputs, **leaves})
    loss.backward()
    assert torch.isfinite(loss) or loss.item() == math.inf  # the squared IPO loss may overflow to +inf, never NaN
    assert not torch.isnan(loss)
    for leaf in leaves.values():
        assert not torch.isnan(leaf.grad).any()


def test_f_divergence_is_offered_only_where_trl_allows_it():
    for name in ("dpo", "dpo_norm", "hinge", "ipo", "exo_pair", "robust_dpo", "discopop"):
        swift_zoo.build_loss(name, f_divergence_type="js_divergence")
    for name in ("nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "rpo"):
        with pytest.raises(ConfigError) as info:
            swift_zoo.build_loss(name, f_divergence_type="js_divergence")
        assert "f_divergence_type" in str(info.value)


def test_f_divergence_options_are_validated():
    with pytest.raises(ConfigError) as info:
        DpoLoss(f_divergence_type="kl")
    assert info.value.key == "f_divergence_type" and "'reverse_kl'" in str(info.value) and "'kl'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        DpoLoss(f_divergence_type="alpha_divergence", f_alpha_divergence_convention="trl0")
    assert info.value.key == "f_alpha_divergence_convention"
    with pytest.raises(ConfigError) as info:
        DpoLoss(f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.0,
                f_alpha_divergence_convention="trl_legacy")
    assert str(info.value) == (
        "dpo: f_alpha_divergence_coef must be != 0 with f_alpha_divergence_convention='trl_legacy' (the margin "
        "divides by it), got 0.0; the reverse-KL limit is f_divergence_type='reverse_kl'")
    with pytest.raises(ConfigError):
        DpoLoss(f_divergence_type="alpha_divergence", f_alpha_divergence_coef=math.nan)


# ---------------------------------------------------------------------------------------------- LD-DPO
def test_ld_tail_logps_matches_a_loop():
    generator = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(3, 7, generator=generator), torch.randn(3, 7, generator=generator)
    chosen_mask = torch.tensor([[0, 1, 1, 1, 1, 0, 0], [1, 1, 0, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1]])
    rejected_mask = torch.tensor([[0, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 1]])
    tails = ld_tail_logps(chosen, chosen_mask, rejected, rejected_mask)
    for row in range(3):
        common = min(int(chosen_mask[row].sum()), int(rejected_mask[row].sum()))
        for tail, tokens, mask in ((tails[0], chosen, chosen_mask), (tails[1], rejected, rejected_mask)):
            scored = [float(tokens[row, t]) for t in range(7) if mask[row, t]]
            assert tail[row].item() == pytest.approx(sum(scored[common:]), abs=1e-6)


@pytest.mark.parametrize("ld_alpha", [0.0, 0.3, 1.0])
def test_ld_dpo_weights_policy_and_reference_tails(ld_alpha):
    outputs = example("dpo", seed=1)

    def reference(p):
        def ld(total, tail):
            return total - (1 - ld_alpha) * tail

        c = ld(p["sc"], p["tsc"]) - ld(p["rc"], p["trc"])
        r = ld(p["sr"], p["tsr"]) - ld(p["rr"], p["trr"])
        return -log_sig(0.1 * (c - r))

    check_against("dpo", {"ld_alpha": ld_alpha}, reference, outputs)
    loss = swift_zoo.build_loss("dpo", ld_alpha=ld_alpha)
    tails = {key: outputs[key].clone().requires_grad_(True)
             for key in ("policy_chosen_tail_logps", "policy_rejected_tail_logps")}
    loss({**outputs, **tails}).backward()
    if ld_alpha == 1.0:  # plain DPO: the tails have no influence
        assert all(leaf.grad.abs().max() == 0 for leaf in tails.values())
    else:
        assert all(leaf.grad.abs().max() > 0 for leaf in tails.values())


def test_ld_dpo_requires_the_tail_inputs():
    outputs = example("dpo")
    del outputs["reference_rejected_tail_logps"]
    swift_zoo.build_loss("dpo")(outputs)  # optional when the option is off
    with pytest.raises(LossInputError) as info:
        swift_zoo.build_loss("dpo", ld_alpha=0.5)(outputs)
    assert "reference_rejected_tail_logps" in str(info.value) and "dpo" in str(info.value)
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("dpo", ld_alpha=1.5)
    assert info.value.key == "ld_alpha"


# ------------------------------------------------------------------------------------------------- WPO
def test_wpo_weights_each_pair_by_detached_sequence_probabilities():
    outputs = example("dpo", seed=2)

    def weight(p, side):
        return math.exp((p["s" + side] - p["q" + side]) / p["n" + side])

    def reference(p):
        return -log_sig(0.1 * ((p["sc"] - p["rc"]) - (p["sr"] - p["rr"]))) * weight(p, "c") * weight(p, "r")

    def gradient(p, short):  # the weights are constants for the gradient (computed without it)
        sign = 1.0 if short == "sc" else -1.0
        z = 0.1 * ((p["sc"] - p["rc"]) - (p["sr"] - p["rr"]))
        return -(1.0 - math.exp(log_sig(z))) * 0.1 * sign * weight(p, "c") * weight(p, "r")

    check_against("dpo", {"use_weighting": True}, reference, outputs, gradient_of_reference=gradient)
    loss = swift_zoo.build_loss("dpo", use_weighting=True)
    loss(outputs)
    pairs = pairs_of(outputs)
    mean_weight = sum(weight(p, "c") * weight(p, "r") for p in pairs) / len(pairs)
    assert loss.metrics["weights/mean"].item() == pytest.approx(mean_weight, rel=1e-6)


def test_wpo_is_refused_for_the_sorted_aot_losses_and_needs_its_inputs():
    for name in ("aot", "aot_unpaired"):
        with pytest.raises(ConfigError) as info:
            swift_zoo.build_loss(name, use_weighting=True)
        assert "use_weighting" in str(info.value)
    outputs = example("hinge")
    del outputs["policy_chosen_log_sum_sq_probs"]
    with pytest.raises(LossInputError) as info:
        swift_zoo.build_loss("hinge", use_weighting=True)(outputs)
    assert "policy_chosen_log_sum_sq_probs" in str(info.value)
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("dpo", use_weighting=1)
    assert info.value.key == "use_weighting"


def test_sequence_log_sum_sq_probs_matches_a_loop():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, generator=generator, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, 1, 2, 3], [-100, 0, 1, -100, -100]])
    found = sequence_log_sum_sq_probs(logits, labels)
    for row in range(2):
        expected = 0.0
        for t in range(4):
            if labels[row, t + 1] != -100:
                probs = torch.softmax(logits[row, t], -1).tolist()
                expected += math.log(sum(q * q for q in probs))
        assert found[row].item() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize(("name", "kwargs"), [
    ("dpo", {"ld_alpha": 0.4, "f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3}),
    ("ipo", {"f_divergence_type": "js_divergence", "ld_alpha": 0.2}),
    ("exo_pair", {"f_divergence_type": "forward_kl"}),
    ("aot", {"ld_alpha": 0.5}),
    ("bco_pair", {"ld_alpha": 0.5}),
])
def test_options_pass_the_conformance_suite(name, kwargs):
    check_loss(swift_zoo.build_loss(name, **kwargs))


@pytest.mark.parametrize("name", ["dpo", "sppo_hard", "rpo"])
def test_wpo_passes_the_conformance_suite_with_its_stop_gradient_declared(name):
    reason = "WPO's weights are computed without gradient from policy_*_logps: finite differences see them move"
    check_loss(swift_zoo.build_loss(name, use_weighting=True), expected_failures={"check_gradcheck": reason})
