"""Every loss that declares itself equal to a TRL 1.16 ``DPOConfig(...)`` against ``DPOTrainer._compute_loss``.

TRL computes the DPO family inside ``DPOTrainer._compute_loss(model, inputs, return_outputs)``, from the
per-token log-probs its fused LM head returns. The comparison drives that method on a trainer made without
``__init__`` (see ``_loss_equivalences``): ``args`` is the real ``DPOConfig`` built from the declared spelling, the
attributes ``__init__`` would copy from it are copied the same way, and the policy / reference models are
stubs returning fixed per-token log-probs (zero outside the completion, as the fused head returns them).
The zoo loss gets the per-sequence currency computed from the same tensors (sums, token counts, LD-DPO tail
sums, WPO's summed ``log sum_v p^2``). Values and gradients with respect to the policy's per-token
log-probs must agree.
"""

from __future__ import annotations

import warnings

import pytest
import torch

trl = pytest.importorskip("trl", reason="TRL is not installed (the references nox session installs trl==1.16.0)")

from _loss_equivalences import (  # noqa: E402
    Accelerator,
    StubModel,
    assert_close,
    build_zoo,
    declared,
    namespace,
    parse_call,
    record_id,
)
from trl import DPOConfig, DPOTrainer  # noqa: E402

from swift_loss_zoo.preference import ld_tail_logps  # noqa: E402

RECORDS = declared("trl", "DPOConfig(")
PAIRS, WIDTH = 4, 10


def batch(seed: int, dtype: torch.dtype):
    """Padded [chosen; rejected] rows: prompt, completion, right padding; per-token log-probs of both models."""
    generator = torch.Generator().manual_seed(seed)
    rows = 2 * PAIRS
    prompt = torch.randint(2, 4, (rows,), generator=generator)
    prompt[PAIRS:] = prompt[:PAIRS]  # a pair shares its prompt
    completion = torch.randint(1, WIDTH - 3, (rows,), generator=generator)
    position = torch.arange(WIDTH)
    completion_mask = ((position >= prompt[:, None]) & (position < (prompt + completion)[:, None])).long()
    attention_mask = (position < (prompt + completion)[:, None]).long()
    input_ids = torch.randint(0, 50, (rows, WIDTH), generator=generator)
    shift_mask = completion_mask[:, 1:].to(dtype)
    policy = -(0.1 + 2.0 * torch.rand(rows, WIDTH - 1, generator=generator, dtype=torch.float64)).to(dtype)
    reference = -(0.1 + 2.0 * torch.rand(rows, WIDTH - 1, generator=generator, dtype=torch.float64)).to(dtype)
    log_sum_sq = -(0.05 + 1.5 * torch.rand(rows, WIDTH - 1, generator=generator, dtype=torch.float64)).to(dtype)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}
    return inputs, shift_mask, policy, reference * shift_mask, log_sum_sq * shift_mask


def trl_trainer(config: DPOConfig, reference_outputs) -> DPOTrainer:
    trainer = DPOTrainer.__new__(DPOTrainer)
    trainer.args = config
    trainer.accelerator = Accelerator()
    trainer.model = StubModel(None)
    trainer.ref_model = StubModel(reference_outputs)
    trainer.aux_loss_enabled = False
    trainer.precompute_ref_logps = False
    # as DPOTrainer.__init__ copies them from args
    trainer.beta = config.beta
    trainer.loss_types = config.loss_type
    trainer.loss_weights = config.loss_weights or [1.0] * len(config.loss_type)
    trainer.ld_alpha = config.ld_alpha
    trainer.f_divergence_type = config.f_divergence_type
    trainer.f_alpha_divergence_coef = config.f_alpha_divergence_coef
    trainer.label_smoothing = config.label_smoothing
    trainer.use_weighting = config.use_weighting
    trainer._metrics = {"train": __import__("collections").defaultdict(list),
                        "eval": __import__("collections").defaultdict(list)}
    trainer._total_train_tokens = 0
    trainer._tp_size = 1
    return trainer


def fused_outputs(log_probs: torch.Tensor, log_sum_sq: torch.Tensor):
    zeros = torch.zeros_like(log_probs)
    return namespace(log_probs=log_probs, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool(),
                     log_sum_sq_probs=log_sum_sq)


def zoo_inputs(shift_mask, policy, reference, log_sum_sq) -> dict[str, torch.Tensor]:
    chosen, rejected = slice(0, PAIRS), slice(PAIRS, 2 * PAIRS)
    lengths = shift_mask.sum(1).long()
    found = {
        "policy_chosen_logps": policy[chosen].sum(1), "policy_rejected_logps": policy[rejected].sum(1),
        "reference_chosen_logps": reference[chosen].sum(1), "reference_rejected_logps": reference[rejected].sum(1),
        "chosen_lengths": lengths[chosen], "rejected_lengths": lengths[rejected],
        "policy_chosen_log_sum_sq_probs": log_sum_sq[chosen].sum(1),
        "policy_rejected_log_sum_sq_probs": log_sum_sq[rejected].sum(1),
    }
    for model, tokens in (("policy", policy), ("reference", reference)):
        tails = ld_tail_logps(tokens[chosen], shift_mask[chosen], tokens[rejected], shift_mask[rejected])
        found[f"{model}_chosen_tail_logps"], found[f"{model}_rejected_tail_logps"] = tails
    return found


@pytest.mark.parametrize("item", RECORDS, ids=[record_id(item) for item in RECORDS])
@pytest.mark.parametrize("seed", [0, 1])
def test_dpo_family_equals_trl(item, seed, tmp_path):
    name, record = item
    function, kwargs = parse_call(record.name)
    assert function == "DPOConfig"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, **kwargs)
    # TRL 1.16's alpha-divergence clamp table has no float64 entry: compare in float32 there
    dtype = torch.float32 if config.f_divergence_type == "alpha_divergence" else torch.float64
    rtol, atol = (2e-5, 2e-6) if dtype == torch.float32 else (1e-6, 1e-9)
    inputs, shift_mask, policy_values, reference, log_sum_sq = batch(seed, dtype)

    leaf = policy_values.clone().requires_grad_(True)
    trainer = trl_trainer(config, fused_outputs(reference, log_sum_sq))
    policy_outputs = fused_outputs(leaf * shift_mask, log_sum_sq)
    expected = DPOTrainer._compute_loss(trainer, StubModel(policy_outputs), dict(inputs), False)
    expected.backward()
    expected_grad = leaf.grad.clone()

    leaf.grad = None
    zoo = build_zoo(name, record)
    found = zoo(zoo_inputs(shift_mask, leaf * shift_mask, reference, log_sum_sq))
    found.backward()
    assert_close(found, expected, f"{name} value vs TRL {record.name}", rtol=rtol, atol=atol)
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs TRL {record.name}", rtol=rtol, atol=atol)
