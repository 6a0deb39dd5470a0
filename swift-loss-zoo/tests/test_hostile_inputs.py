"""The zoo's losses with inputs a trainer can really produce: NaN/Inf logits at ignored positions (issue 13
item 8), labels outside their domain (item 9), counts that are not exact (item 7)."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_zoo import LossInputError


def lm_batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 6, 11, generator=generator)
    labels = torch.randint(0, 11, (3, 6), generator=generator)
    labels[0, :3] = -100
    labels[2, 4:] = -100
    return logits, labels


def ignored_logit_rows(labels: torch.Tensor) -> torch.Tensor:
    """Rows of the logits no label scores (logits at t predict labels at t + 1; the last row scores nothing)."""
    scored = torch.zeros_like(labels, dtype=torch.bool)
    scored[:, :-1] = labels[:, 1:] != -100
    return ~scored


CROSS_ENTROPY_LIKE = [
    ("cross_entropy", {}),
    ("cross_entropy", {"label_smoothing": 0.1, "z_loss": 1e-3}),
    ("weighted_sum", {"losses": [{"type": "cross_entropy", "weight": 1.0},
                                 {"type": "cross_entropy", "weight": 0.5, "kwargs": {"z_loss": 1e-4}}]}),
    ("dft", {}),
]


@pytest.mark.parametrize("filled", [float("nan"), float("inf")])
@pytest.mark.parametrize(("name", "kwargs"), CROSS_ENTROPY_LIKE, ids=lambda v: v if isinstance(v, str) else "")
def test_non_finite_logits_at_ignored_positions_never_reach_the_gradient(name, kwargs, filled):
    loss = swift_zoo.build_loss(name, **kwargs)
    logits, labels = lm_batch()
    ignored = ignored_logit_rows(labels)
    clean = logits.clone().requires_grad_(True)
    expected = loss({"logits": clean}, labels)
    expected.backward()
    dirty = logits.clone()
    dirty[ignored] = filled
    dirty.requires_grad_(True)
    value = loss({"logits": dirty}, labels)
    value.backward()
    torch.testing.assert_close(value, expected.detach())
    assert torch.equal(dirty.grad[ignored], torch.zeros_like(dirty.grad[ignored]))
    assert torch.isfinite(dirty.grad).all()
    torch.testing.assert_close(dirty.grad[~ignored], clean.grad[~ignored], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["pointwise_reranker", "contrastive", "online_contrastive"])
@pytest.mark.parametrize("bad", [-100.0, 7.0])
def test_binary_labels_outside_zero_and_one_are_refused(name, bad):
    loss = swift_zoo.build_loss(name)
    labels = torch.tensor([1.0, 0.0, bad, 1.0])
    if name == "pointwise_reranker":
        outputs = {"logits": torch.randn(4)}
    else:
        outputs = {"embeddings_a": torch.randn(4, 5), "embeddings_b": torch.randn(4, 5)}
    domain = "values in \\[0, 1\\]" if name == "pointwise_reranker" else "0 or 1"
    with pytest.raises(LossInputError, match=f"{name}: labels must hold {domain}; found 1 value\\(s\\) outside, "
                                             f"e.g. {bad} at position \\(2,\\)"):
        loss(outputs, labels)


@pytest.mark.parametrize("name", ["cross_entropy", "dft", "forward_kl"])
@pytest.mark.parametrize("bad", [11, 50, -1, -7])
def test_token_ids_outside_the_vocabulary_are_refused_before_torch_sees_them(name, bad):
    loss = swift_zoo.build_loss(name)
    logits, labels = lm_batch()
    labels[1, 3] = bad
    outputs = {"logits": logits} if name != "forward_kl" else {"student_logits": logits, "teacher_logits": logits}
    with pytest.raises(LossInputError, match=rf"{name}: labels must hold class indices in \[0, V=11\) or "
                                             rf"ignore_index -100; found 1 value\(s\) outside, e.g. {bad} at "
                                             r"position \(1, 3\)"):
        loss(outputs, labels)


def test_fused_linear_cross_entropy_checks_ids_against_the_head():
    loss = swift_zoo.build_loss("fused_linear_cross_entropy")
    hidden, weight = torch.randn(5, 4), torch.randn(9, 4)
    with pytest.raises(LossInputError, match=r"class indices in \[0, V=9\)"):
        loss({"hidden_states": hidden, "lm_head_weight": weight}, torch.tensor([0, 3, 9, -100, 2]))


@pytest.mark.parametrize("count", [math.nan, math.inf, 2.5, torch.tensor(1000001.0, dtype=torch.bfloat16)])
def test_inexact_counts_are_refused_by_every_loss(count):
    logits, labels = lm_batch()
    with pytest.raises(LossInputError, match="cross_entropy: num_items_in_batch"):
        swift_zoo.build_loss("cross_entropy")({"logits": logits}, labels, num_items_in_batch=count)
