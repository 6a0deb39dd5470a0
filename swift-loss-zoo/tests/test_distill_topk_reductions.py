"""``forward_kl_topk`` and ``generalized_jsd``'s reductions against float64 formulas written per token."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_zoo import ConfigError, LossInputError
from swift_zoo.testing import check_loss


def example(name: str, seed: int = 0, batch_size: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return swift_zoo.get_loss(name).example_inputs(batch_size=batch_size, generator=generator, dtype=torch.float64)


def counted(labels: torch.Tensor) -> list[tuple[int, int]]:
    batch, width = labels.shape
    return [(b, t) for b in range(batch) for t in range(width - 1) if labels[b, t + 1] != -100]


def topk_reference(student_row, teacher_logps, indices, normalization, temperature=1.0):
    """One token: the forward KL on the teacher's top-k entries, from plain floats."""
    logits = [float(x) / temperature for x in student_row]
    top = max(logits)
    log_z = top + math.log(sum(math.exp(x - top) for x in logits))
    entries = [(float(t), logits[int(i)] - log_z) for t, i in zip(teacher_logps, indices) if float(t) > -math.inf]
    if not entries:
        return 0.0
    if normalization == "renormalize":
        tz = math.log(sum(math.exp(t) for t, _ in entries))
        sz = math.log(sum(math.exp(s) for _, s in entries))
        entries = [(t - tz, s - sz) for t, s in entries]
    total = sum(math.exp(t) * (t - s) for t, s in entries)
    if normalization == "none":
        return max(total, 0.0)
    if normalization == "tail":
        t_tail = math.log(1.0 - sum(math.exp(t) for t, _ in entries))
        s_tail = math.log(1.0 - sum(math.exp(s) for _, s in entries))
        total += math.exp(t_tail) * (t_tail - s_tail)
    return total


@pytest.mark.parametrize("normalization", ["none", "renormalize", "tail"])
@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_forward_kl_topk_matches_the_per_token_formula(normalization, temperature):
    outputs, labels = example("forward_kl_topk", seed=1)
    outputs = dict(outputs)
    outputs["teacher_topk_logps"] = outputs["teacher_topk_logps"].clone()
    outputs["teacher_topk_logps"][0, 3, -1] = -math.inf  # a teacher that returned fewer than k tokens
    outputs["teacher_topk_logps"][2, 4, :] = -math.inf  # and one that returned none at a counted position
    positions = counted(labels)
    assert (2, 4) in positions
    loss = swift_zoo.build_loss("forward_kl_topk", normalization=normalization, temperature=temperature)
    leaf = outputs["student_logits"].clone().requires_grad_(True)
    value = loss({**outputs, "student_logits": leaf}, labels)
    expected = [topk_reference(outputs["student_logits"][b, t], outputs["teacher_topk_logps"][b, t],
                               outputs["teacher_topk_indices"][b, t], normalization, temperature)
                for b, t in positions]
    assert value.item() == pytest.approx(sum(expected) / len(positions), rel=1e-10, abs=1e-12)
    value.backward()
    assert torch.isfinite(leaf.grad).all()
    assert leaf.grad[2, 4].abs().max() == 0  # nothing to distil where the teacher gave no entry
    assert int(loss.count_units(outputs, labels)) == len(positions)
    b, t = positions[0]  # gradient of one logit, by central differences of the reference
    h = 1e-6
    for v in range(3):
        up, down = outputs["student_logits"][b, t].clone(), outputs["student_logits"][b, t].clone()
        up[v] += h
        down[v] -= h
        args = (outputs["teacher_topk_logps"][b, t], outputs["teacher_topk_indices"][b, t], normalization, temperature)
        numeric = (topk_reference(up, *args) - topk_reference(down, *args)) / (2 * h) / len(positions)
        assert leaf.grad[b, t, v].item() == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_forward_kl_topk_plain_is_clamped_at_zero_and_clamps_as_verl():
    outputs, labels = example("forward_kl_topk", seed=2)
    outputs = dict(outputs)
    one_hot = torch.nn.functional.one_hot(outputs["teacher_topk_indices"][..., 0], outputs["student_logits"].shape[-1])
    outputs["student_logits"] = outputs["student_logits"] - 30.0 * one_hot
    plain = swift_zoo.build_loss("forward_kl_topk")(outputs, labels)
    clamped = swift_zoo.build_loss("forward_kl_topk", log_prob_min_clamp=-10.0, loss_max_clamp=10.0)(outputs, labels)
    assert plain.item() > 10.0 and 0.0 < clamped.item() <= 10.0
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("forward_kl_topk", normalization="renormalise")
    assert info.value.key == "normalization" and "'none', 'renormalize', 'tail'" in str(info.value)


def test_forward_kl_topk_rejects_indices_outside_the_vocabulary():
    outputs, labels = example("forward_kl_topk")
    outputs = dict(outputs)
    outputs["teacher_topk_indices"] = outputs["teacher_topk_indices"].clone()
    b, t = counted(labels)[0]
    outputs["teacher_topk_indices"][b, t, 1] = 9
    with pytest.raises(LossInputError) as info:
        swift_zoo.build_loss("forward_kl_topk")(outputs, labels)
    assert str(info.value) == ("forward_kl_topk: teacher_topk_indices must lie in [0, 9) (the student's vocabulary) "
                               "at counted positions, found values in [0, 9]")
    outputs["teacher_topk_indices"][b, t, 1] = 0
    outputs["teacher_topk_indices"][0, 0, 0] = -1  # an ignored position (prompt) may hold anything
    swift_zoo.build_loss("forward_kl_topk")(outputs, labels)


@pytest.mark.parametrize("normalization", ["none", "renormalize", "tail"])
def test_forward_kl_topk_passes_the_conformance_suite(normalization):
    check_loss(swift_zoo.build_loss("forward_kl_topk", normalization=normalization))


# ---------------------------------------------------------------------------- generalized_jsd reductions
def test_generalized_jsd_reductions_through_their_units():
    outputs, labels = example("generalized_jsd", seed=3)
    token = swift_zoo.build_loss("generalized_jsd")
    per_token_mean = token(outputs, labels).item()
    positions = counted(labels)
    total = per_token_mean * len(positions)
    batchmean = swift_zoo.build_loss("generalized_jsd", reduction="batchmean")
    summed = swift_zoo.build_loss("generalized_jsd", reduction="sum")
    assert batchmean(outputs, labels).item() == pytest.approx(total / labels.shape[0], rel=1e-12)
    assert summed(outputs, labels).item() == pytest.approx(total, rel=1e-12)
    assert (token.reduction_unit, batchmean.reduction_unit, summed.reduction_unit) == ("token", "sequence", "batch")
    assert int(token.count_units(outputs, labels)) == len(positions)
    assert int(batchmean.count_units(outputs, labels)) == labels.shape[0]
    assert int(summed.count_units(outputs, labels)) == 1
    # num_items_in_batch counts each reduction's unit: rows for batchmean, micro-batches for sum
    assert batchmean(outputs, labels, num_items_in_batch=10).item() == pytest.approx(total / 10, rel=1e-12)
    assert summed(outputs, labels, num_items_in_batch=2).item() == pytest.approx(total / 2, rel=1e-12)
    assert summed.batch_dependent and not batchmean.batch_dependent
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("generalized_jsd", reduction="mean")
    assert info.value.key == "reduction"


@pytest.mark.parametrize("reduction", ["batchmean", "sum"])
def test_generalized_jsd_reductions_pass_the_conformance_suite(reduction):
    check_loss(swift_zoo.build_loss("generalized_jsd", reduction=reduction))
