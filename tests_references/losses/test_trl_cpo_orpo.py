"""Reference-free losses declared equal to TRL 1.16's ``CPOConfig(...)`` / ``ORPOConfig(...)`` against the trainers.

``CPOTrainer`` and ``ORPOTrainer`` (``trl.experimental``) compute their losses in
``get_batch_loss_metrics(model, batch)`` from the logits of one forward pass over the concatenated
``[chosen; rejected]`` rows. The comparison drives that method on a trainer made without ``__init__``: the
real config from the declared spelling, the attributes ``__init__`` copies from it, ``concatenated_inputs``
returning the padded rows directly (as ms-swift's trainers do) and a stub model returning fixed logits.
The zoo loss reads the summed log-probs and token counts of the same logits (``swift_zoo.ops.sequence_logps``;
for ORPO's ``nll_convention="trl"`` also the chosen rows' prompt tokens). Values and gradients with respect
to the logits must agree.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not installed (the references nox session installs trl==1.16.0)")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from _loss_equivalences import (
    Accelerator,
    StubModel,
    assert_close,
    build_zoo,
    declared,
    namespace,
    parse_call,
    record_id,
)
from trl.experimental.cpo import CPOConfig, CPOTrainer
from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from swift_zoo.ops import sequence_logps

RECORDS = declared("trl", "CPOConfig(") + declared("trl", "ORPOConfig(")
PAIRS, WIDTH, VOCAB = 4, 10, 11


def rows(seed: int):
    """``[chosen; rejected]`` rows: prompt, completion, right padding; labels mask the prompt and padding."""
    generator = torch.Generator().manual_seed(seed)
    count = 2 * PAIRS
    prompt = torch.randint(2, 4, (count,), generator=generator)
    prompt[PAIRS:] = prompt[:PAIRS]
    completion = torch.randint(1, WIDTH - 3, (count,), generator=generator)
    position = torch.arange(WIDTH)
    attention = (position < (prompt + completion)[:, None]).long()
    input_ids = torch.randint(0, VOCAB, (count, WIDTH), generator=generator)
    labels = input_ids.masked_fill((position < prompt[:, None]) | (attention == 0), -100)
    prompt_labels = input_ids.masked_fill(position >= prompt[:, None], -100)
    logits = 1.5 * torch.randn(count, WIDTH, VOCAB, generator=generator, dtype=torch.float64)
    concatenated = {"concatenated_input_ids": input_ids, "concatenated_attention_mask": attention,
                    "concatenated_labels": labels}
    return concatenated, prompt_labels, logits


def trl_trainer(cls, config, concatenated):
    trainer = cls.__new__(cls)
    trainer.args = config
    trainer.accelerator = Accelerator()
    trainer.is_encoder_decoder = False
    trainer.aux_loss_enabled = False
    trainer.beta = config.beta
    trainer.pad_token_id = trainer.padding_value = 0
    trainer.label_pad_token_id = -100
    if cls is CPOTrainer:
        trainer.label_smoothing = config.label_smoothing
        trainer.loss_type = config.loss_type
        trainer.cpo_alpha = config.cpo_alpha
        trainer.alpha = config.alpha
        if config.loss_type == "simpo":
            trainer.simpo_gamma = config.simpo_gamma
    trainer.concatenated_inputs = lambda *args, **kwargs: concatenated
    return trainer


def zoo_inputs(logits, concatenated, prompt_labels) -> dict[str, torch.Tensor]:
    summed, counts = sequence_logps(logits, concatenated["concatenated_labels"])
    prompt_summed, prompt_counts = sequence_logps(logits[:PAIRS], prompt_labels[:PAIRS])
    return {
        "policy_chosen_logps": summed[:PAIRS], "policy_rejected_logps": summed[PAIRS:],
        "chosen_lengths": counts[:PAIRS], "rejected_lengths": counts[PAIRS:],
        "policy_chosen_prompt_logps": prompt_summed, "chosen_prompt_lengths": prompt_counts,
    }


@pytest.mark.parametrize("item", RECORDS, ids=[record_id(item) for item in RECORDS])
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_free_equals_trl(item, seed, tmp_path):
    name, record = item
    function, kwargs = parse_call(record.name)
    config_cls, trainer_cls = {"CPOConfig": (CPOConfig, CPOTrainer), "ORPOConfig": (ORPOConfig, ORPOTrainer)}[function]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = config_cls(output_dir=str(tmp_path), report_to=[], use_cpu=True, **kwargs)
    concatenated, prompt_labels, logits = rows(seed)
    leaf = logits.clone().requires_grad_(True)
    trainer = trl_trainer(trainer_cls, config, concatenated)
    batch = {"chosen_labels": concatenated["concatenated_labels"][:PAIRS]}
    expected, _ = trainer_cls.get_batch_loss_metrics(trainer, StubModel(namespace(logits=leaf)), batch)
    expected.backward()
    expected_grad = leaf.grad.clone()

    leaf.grad = None
    found = build_zoo(name, record)(zoo_inputs(leaf, concatenated, prompt_labels))
    found.backward()
    # ORPO casts the averaged log-probs to float32 (odds_ratio_loss: .float())
    rtol, atol = (2e-6, 2e-7) if function == "ORPOConfig" else (1e-6, 1e-9)
    assert_close(found, expected, f"{name} value vs TRL {record.name}", rtol=rtol, atol=atol)
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs TRL {record.name}", rtol=rtol, atol=atol)
