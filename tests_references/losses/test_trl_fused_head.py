"""Token losses declared equal to TRL 1.16's ``SFTConfig(loss_type=...)``, through TRL's own fused LM head.

TRL's SFT loss never builds logits: ``add_fused_lm_head`` patches the model so that
``model(..., labels=labels, fused_lm_head=True)`` returns per-token log-probs computed in tiles, and
``SFTTrainer.compute_loss`` reduces them (``nll``; ``dft`` scales each by its detached probability). The
comparison builds a tiny Llama from a config (no download), patches it with TRL's head, and drives
``SFTTrainer.compute_loss`` on a trainer made without ``__init__``; the zoo loss gets the same model's
logits. Values and the gradients of every parameter must agree. The same head's ``log_sum_sq_probs`` (what
TRL's WPO weighting reads) is compared with ``swift_loss_zoo.preference.sequence_log_sum_sq_probs``.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not installed (the references nox session installs trl==1.16.0)")

from _loss_equivalences import (
    ATOL32,
    RTOL32,
    Accelerator,
    assert_close,
    build_zoo,
    declared,
    parse_call,
    record_id,
)
from transformers import LlamaConfig, LlamaForCausalLM
from trl import SFTConfig, SFTTrainer
from trl.trainer.utils import add_fused_lm_head

from swift_loss_zoo.preference import sequence_log_sum_sq_probs

RECORDS = declared("trl", "SFTConfig(")
VOCAB = 48


def tiny_model(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(config).float()


def batch(seed: int):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (3, 10), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, -3:] = 0
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :4] = -100  # the prompt
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@pytest.mark.parametrize("item", RECORDS, ids=[record_id(item) for item in RECORDS])
@pytest.mark.parametrize("num_items_in_batch", [None, 29])
def test_token_loss_equals_trl_sft(item, num_items_in_batch, tmp_path):
    name, record = item
    _, kwargs = parse_call(record.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = SFTConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, average_tokens_across_devices=False,
                         **kwargs)
    model = tiny_model(0)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    trainer = SFTTrainer.__new__(SFTTrainer)
    trainer.args, trainer.model = args, model
    trainer.accelerator = Accelerator()
    trainer.accelerator.parallelism_config = None
    trainer.aux_loss_enabled = False
    trainer.compute_loss_func = None
    trainer.label_smoother = None
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer._total_train_tokens, trainer._tp_size = 0, 1
    inputs = batch(1)
    count = None if num_items_in_batch is None else torch.tensor(num_items_in_batch)
    expected = SFTTrainer.compute_loss(trainer, model, dict(inputs), num_items_in_batch=count)
    expected.backward()
    expected_grads = {key: p.grad.clone() for key, p in model.named_parameters()}
    model.zero_grad()

    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    found = build_zoo(name, record)({"logits": logits}, inputs["labels"], num_items_in_batch=num_items_in_batch)
    found.backward()
    assert_close(found, expected, f"{name} value vs TRL {record.name}", rtol=RTOL32, atol=ATOL32)
    for key, parameter in model.named_parameters():
        assert_close(parameter.grad, expected_grads[key], f"{name} gradient of {key} vs TRL {record.name}",
                     rtol=1e-4, atol=1e-6)


def test_sequence_log_sum_sq_probs_equals_trl_fused_head():
    model = tiny_model(1)
    add_fused_lm_head(model, outputs=("log_probs", "log_sum_sq_probs"))
    inputs = batch(2)
    with torch.no_grad():
        fused = model(**inputs, fused_lm_head=True)
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    expected = fused.log_sum_sq_probs.sum(-1)  # zero where the next-token label is ignored
    assert_close(sequence_log_sum_sq_probs(logits, inputs["labels"]), expected,
                 "sequence_log_sum_sq_probs vs TRL's fused head", rtol=RTOL32, atol=ATOL32)
