"""Logit distillation losses against explicit float64 sums over the vocabulary."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_loss_zoo.distill import ForwardKLLoss, GeneralizedJSDLoss, ReverseKLLoss, TVDLoss
from swift_zoo import ConfigError

F64 = torch.float64


def assert_close(actual, expected, *, rtol=1e-10, atol=1e-12):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), (
        f"max |diff| {(actual - expected).abs().max().item():.3e}\nactual {actual}\nexpected {expected}")


def make_batch(seed, batch, seq, vocab, *, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    teacher = scale * torch.randn(batch, seq, vocab, generator=g, dtype=F64)
    student = teacher + torch.randn(batch, seq, vocab, generator=g, dtype=F64)
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[:, :2] = -100
    labels[0, -1] = -100
    return student, teacher, labels


def softmax_row(logits, temperature):
    """Plain softmax with explicit exponentials (no log_softmax), as lists of 0-dim tensors."""
    scaled = [z / temperature for z in logits]
    top = max(z.item() for z in scaled)
    exps = [torch.exp(z - top) for z in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def divergence(kind, p_s, p_t, beta):
    vocab = range(len(p_s))
    if kind == "forward":
        return sum(p_t[v] * torch.log(p_t[v] / p_s[v]) for v in vocab)
    if kind == "reverse":
        return sum(p_s[v] * torch.log(p_s[v] / p_t[v]) for v in vocab)
    if kind == "tvd":
        return 0.5 * sum(torch.abs(p_s[v] - p_t[v]) for v in vocab)
    mixture = [beta * p_t[v] + (1 - beta) * p_s[v] for v in vocab]  # M computed directly in probability space
    return (beta * sum(p_t[v] * torch.log(p_t[v] / mixture[v]) for v in vocab)
            + (1 - beta) * sum(p_s[v] * torch.log(p_s[v] / mixture[v]) for v in vocab))


def reference(kind, student, teacher, labels, *, temperature=1.0, beta=0.5):
    total, count = 0.0, 0
    batch, seq, vocab = student.shape
    for i in range(batch):
        for t in range(seq - 1):
            if labels[i, t + 1] == -100:  # logits at t predict the label at t + 1
                continue
            p_s = softmax_row([student[i, t, v] for v in range(vocab)], temperature)
            p_t = softmax_row([teacher[i, t, v] for v in range(vocab)], temperature)
            total, count = total + divergence(kind, p_s, p_t, beta), count + 1
    return total / count


CASES = [
    ("forward", ForwardKLLoss, {}),
    ("forward", ForwardKLLoss, {"temperature": 2.0}),
    ("reverse", ReverseKLLoss, {}),
    ("reverse", ReverseKLLoss, {"temperature": 0.7}),
    ("jsd", GeneralizedJSDLoss, {}),
    ("jsd", GeneralizedJSDLoss, {"beta": 0.1, "temperature": 1.5}),
    ("jsd", GeneralizedJSDLoss, {"beta": 0.9}),
    ("tvd", TVDLoss, {}),
    ("tvd", TVDLoss, {"temperature": 3.0}),
]


@pytest.mark.parametrize(("kind", "cls", "kwargs"), CASES)
@pytest.mark.parametrize(("seed", "batch", "seq", "vocab"), [(0, 2, 5, 6), (1, 3, 4, 9)])
def test_value_and_gradient_match_vocabulary_sums(kind, cls, kwargs, seed, batch, seq, vocab):
    student, teacher, labels = make_batch(seed, batch, seq, vocab)
    leaf = student.clone().requires_grad_(True)
    loss = cls(**kwargs)
    value = loss({"student_logits": leaf, "teacher_logits": teacher}, labels)
    value.backward()
    ref_leaf = student.clone().requires_grad_(True)
    expected = reference(kind, ref_leaf, teacher, labels, temperature=kwargs.get("temperature", 1.0),
                         beta=kwargs.get("beta", 0.5))
    expected.backward()
    assert_close(value.detach(), expected.detach())
    assert_close(leaf.grad, ref_leaf.grad)
    assert 0 <= loss.metrics["top1_agreement"] <= 1


def test_generalized_jsd_endpoints_are_the_full_kls():
    student, teacher, labels = make_batch(2, 3, 5, 7)
    outputs = {"student_logits": student, "teacher_logits": teacher}
    forward, reverse = ForwardKLLoss()(outputs, labels), ReverseKLLoss()(outputs, labels)
    assert_close(GeneralizedJSDLoss(beta=0.0)(outputs, labels), forward, rtol=0, atol=0)
    assert_close(GeneralizedJSDLoss(beta=1.0)(outputs, labels), reverse, rtol=0, atol=0)
    assert_close(forward, reference("forward", student, teacher, labels))
    assert_close(reverse, reference("reverse", student, teacher, labels))
    assert not torch.allclose(forward, reverse)
    # The general formula vanishes near the endpoints (TRL's discontinuity), bounded by the entropy of beta.
    for beta in (1e-6, 1 - 1e-6):
        near = GeneralizedJSDLoss(beta=beta)(outputs, labels)
        assert 0 <= near <= -beta * math.log(beta) - (1 - beta) * math.log(1 - beta) + 1e-12
        assert near < 1e-3 * min(forward, reverse)


def test_symmetric_jsd_is_symmetric_and_bounded():
    student, teacher, labels = make_batch(3, 2, 6, 5, scale=6.0)
    jsd = GeneralizedJSDLoss(beta=0.5)
    ab = jsd({"student_logits": student, "teacher_logits": teacher}, labels)
    ba = jsd({"student_logits": teacher, "teacher_logits": student}, labels)
    assert_close(ab, ba)
    assert 0 < ab <= math.log(2)


def test_only_positions_with_a_next_label_count():
    student, teacher, labels = make_batch(4, 2, 6, 5)
    loss = TVDLoss()
    base = loss({"student_logits": student, "teacher_logits": teacher}, labels)
    # labels[:, :2] = -100 masks logits at t = 0 (predicting t = 1); the last logits never count.
    noisy = student.clone()
    noisy[:, 0] = 1e4
    noisy[:, -1] = float("nan")
    noisy[0, -2] = float("inf")  # labels[0, -1] = -100
    leaf = noisy.clone().requires_grad_(True)
    value = loss({"student_logits": leaf, "teacher_logits": teacher}, labels)
    value.backward()
    assert_close(value.detach(), base)
    assert torch.all(leaf.grad[:, 0] == 0) and torch.all(leaf.grad[:, -1] == 0) and torch.all(leaf.grad[0, -2] == 0)
    # ... whereas logits at t = 1 predict labels[:, 2], which counts.
    moved = student.clone()
    moved[:, 1] += 3.0 * torch.randn(2, 5, dtype=F64)
    assert not torch.allclose(loss({"student_logits": moved, "teacher_logits": teacher}, labels), base)
    # row 0: labels 2..4, row 1: labels 2..5
    assert int(loss.count_units({"student_logits": student, "teacher_logits": teacher}, labels)) == 3 + 4


def test_micro_batch_split_is_exact_and_empty_batch_is_zero():
    student, teacher, labels = make_batch(5, 4, 5, 6)
    loss = ForwardKLLoss()
    outputs = {"student_logits": student, "teacher_logits": teacher}
    count = loss.count_units(outputs, labels)
    full = loss(outputs, labels)
    halves = sum(loss({k: v[s] for k, v in outputs.items()}, labels[s], num_items_in_batch=count)
                 for s in (slice(0, 1), slice(1, 4)))
    assert_close(halves, full)
    empty = torch.full_like(labels, -100)
    leaf = student.clone().requires_grad_(True)
    value = loss({"student_logits": leaf, "teacher_logits": teacher}, empty)
    value.backward()
    assert value.item() == 0.0 and torch.all(leaf.grad == 0)


def test_half_precision_and_extreme_logits_stay_finite():
    student, teacher, labels = make_batch(6, 2, 5, 8)
    for cls in (ForwardKLLoss, ReverseKLLoss, GeneralizedJSDLoss, TVDLoss):
        for s, t in ((student.bfloat16(), teacher.half()), (student * 1e4, teacher * 1e4)):
            leaf = s.clone().requires_grad_(True)
            value = cls()({"student_logits": leaf, "teacher_logits": t}, labels)
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(leaf.grad).all(), cls.name


@pytest.mark.parametrize(("name", "kwargs", "key", "expected"), [
    ("generalized_jsd", {"beta": 1.5}, "beta", "in [0.0, 1.0]"),
    ("generalized_jsd", {"beta": -0.1}, "beta", "in [0.0, 1.0]"),
    ("forward_kl", {"temperature": 0.0}, "temperature", "> 0"),
    ("tvd", {"temperature": -1.0}, "temperature", "> 0"),
    ("reverse_kl", {"temperature": float("inf")}, "temperature", "a finite number > 0"),
])
def test_bad_hyperparameters_are_rejected(name, kwargs, key, expected):
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss(name, **kwargs)
    assert info.value.key == key and info.value.expected == expected and info.value.found == kwargs[key]
    assert name in str(info.value) and expected.replace("a number ", "") in str(info.value)
    assert str(kwargs[key]) in str(info.value)


def test_aliases_resolve():
    assert type(swift_zoo.build_loss("gkd")) is GeneralizedJSDLoss
    assert type(swift_zoo.build_loss("total_variation")) is TVDLoss
