"""Token losses declared equal to transformers' ``ForCausalLMLoss`` (the loss of every ``*ForCausalLM`` model).

``transformers.loss.loss_utils.ForCausalLMLoss(logits, labels, vocab_size, num_items_in_batch)`` is called
directly, without and with a global ``num_items_in_batch`` (the gradient-accumulation count). It upcasts the
logits to float32, so the comparison runs in float32.
"""

from __future__ import annotations

import pytest
import torch
from _loss_equivalences import ATOL32, RTOL32, assert_close, build_zoo, declared, parse_call, record_id

RECORDS = declared("transformers", "ForCausalLMLoss(")


@pytest.mark.parametrize("item", RECORDS, ids=[record_id(item) for item in RECORDS])
@pytest.mark.parametrize("num_items_in_batch", [None, 37])
def test_causal_lm_loss_equals_transformers(item, num_items_in_batch):
    pytest.importorskip("transformers", reason="transformers is not installed")
    from transformers.loss.loss_utils import ForCausalLMLoss

    name, record = item
    _, kwargs = parse_call(record.name)
    generator = torch.Generator().manual_seed(0)
    batch, width, vocab = 3, 9, 17
    logits = torch.randn(batch, width, vocab, generator=generator)
    labels = torch.randint(0, vocab, (batch, width), generator=generator)
    labels[:, :3] = -100
    labels[0, 0] = 5  # a first label that is not ignored: HF pads-then-shifts, no wrap-around
    labels[2, -2:] = -100
    leaf = logits.clone().requires_grad_(True)
    count = None if num_items_in_batch is None else torch.tensor(num_items_in_batch)
    expected = ForCausalLMLoss(leaf, labels, vocab, num_items_in_batch=count, **kwargs)
    expected.backward()
    expected_grad = leaf.grad.clone()
    leaf.grad = None
    found = build_zoo(name, record)({"logits": leaf}, labels, num_items_in_batch=num_items_in_batch)
    found.backward()
    assert_close(found, expected, f"{name} value vs {record.name}", rtol=RTOL32, atol=ATOL32)
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs {record.name}", rtol=RTOL32, atol=ATOL32)
