"""DPO-family losses declared equal to ms-swift 4.6's ``swift rlhf --rlhf_type dpo ...``.

ms-swift computes them in ``swift.rlhf_trainers.DPOTrainer.get_batch_loss_metrics(model, batch)``: its own
``dpo_loss`` (vendored from TRL <= 0.28), the IPO length averaging, ``loss_weights``, ``rpo_alpha``. The
comparison drives that method on a trainer made without ``__init__``: ``args`` is ms-swift's trainer
``DPOConfig`` (TRL 0.29's plus ``rpo_alpha`` and friends) built from the declared flags, the attributes ms-swift's ``__init__``
sets are set the same way, ``concatenated_forward`` returns the per-sequence outputs of fixed per-token
log-probs (with ``nll_loss`` computed as ms-swift's line does) and the reference log-probs come in the batch.

ms-swift pins ``trl<1.0``, so it cannot share a venv with TRL 1.16: this module skips in the ``references``
session and runs where ms-swift 4.6 is installed (``python -m pytest tests_references/losses`` in such a venv).
Records of other ms-swift trainers (CPO/SimPO/ORPO/KTO/GKD/reward, SFT and embedding losses) are
documented, not driven here: they are TRL 0.29's trainers or need ms-swift's template and model plumbing.
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("swift.rlhf_trainers", reason="ms-swift is not installed (it pins trl<1.0 and cannot share the "
                                                  "references venv with trl==1.16.0)")

from _loss_equivalences import Accelerator, StubModel, assert_close, build_zoo, declared, parse_flags, record_id
from swift.rlhf_trainers.arguments import DPOConfig
from swift.rlhf_trainers.dpo_trainer import DPOTrainer

from swift_loss_zoo.preference import ld_tail_logps

RECORDS = [item for item in declared("ms-swift", "--rlhf_type dpo ")]
PAIRS, WIDTH = 4, 9


def swift_args(flags: dict[str, str], tmp_path) -> DPOConfig:
    values: dict[str, object] = {}
    for key, text in flags.items():
        if key == "rlhf_type":
            continue
        if key in {"loss_type", "loss_weights"}:
            items = text.split()
            values[key] = [float(x) for x in items] if key == "loss_weights" else items
        else:
            try:
                values[key] = float(text)
            except ValueError:
                values[key] = text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, **values)


@pytest.mark.parametrize("item", RECORDS, ids=[record_id(item) for item in RECORDS])
@pytest.mark.parametrize("seed", [0, 1])
def test_dpo_family_equals_ms_swift(item, seed, tmp_path):
    name, record = item
    args = swift_args(parse_flags(record.name), tmp_path)
    generator = torch.Generator().manual_seed(seed)
    rows = 2 * PAIRS
    lengths = torch.randint(1, WIDTH + 1, (rows,), generator=generator)
    mask = (torch.arange(WIDTH) < lengths[:, None]).double()
    policy = -(0.1 + 2.0 * torch.rand(rows, WIDTH, generator=generator, dtype=torch.float64))
    reference = -(0.1 + 2.0 * torch.rand(rows, WIDTH, generator=generator, dtype=torch.float64)) * mask
    leaf = policy.clone().requires_grad_(True)
    tokens = leaf * mask
    chosen, rejected = slice(0, PAIRS), slice(PAIRS, rows)
    model_output = {
        "chosen_logps": tokens[chosen].sum(1), "rejected_logps": tokens[rejected].sum(1),
        "chosen_completion_token_counts": lengths[chosen], "rejected_completion_token_counts": lengths[rejected],
        # DPOTrainer.concatenated_forward: nll_loss = -per_token_logps[:n][loss_mask[:n]].mean()
        "nll_loss": -tokens[chosen][mask[chosen].bool()].mean(),
        "mean_chosen_logits": torch.zeros(()), "mean_rejected_logits": torch.zeros(()),
    }
    trainer = DPOTrainer.__new__(DPOTrainer)
    trainer.args = args
    trainer.accelerator = Accelerator()
    trainer.beta = args.beta
    trainer.label_smoothing = args.label_smoothing
    trainer.loss_type = list(args.loss_type) if isinstance(args.loss_type, list) else [args.loss_type]
    trainer.loss_weights = args.loss_weights
    trainer.f_divergence_type = args.f_divergence_type
    trainer.f_divergence_params = {"alpha_divergence_coef": args.f_alpha_divergence_coef}
    trainer.reference_free = False
    trainer.use_weighting = False
    trainer.aux_loss_enabled = False
    trainer.concatenated_forward = lambda model, batch, is_ref_model=False: model_output
    batch = {"ref_chosen_logps": reference[chosen].sum(1), "ref_rejected_logps": reference[rejected].sum(1)}
    expected, _ = DPOTrainer.get_batch_loss_metrics(trainer, StubModel(None), batch)
    expected.backward()
    expected_grad = leaf.grad.clone()

    leaf.grad = None
    tokens = leaf * mask
    outputs = {
        "policy_chosen_logps": tokens[chosen].sum(1), "policy_rejected_logps": tokens[rejected].sum(1),
        "reference_chosen_logps": reference[chosen].sum(1), "reference_rejected_logps": reference[rejected].sum(1),
        "chosen_lengths": lengths[chosen], "rejected_lengths": lengths[rejected],
    }
    for model, values in (("policy", tokens), ("reference", reference)):
        tails = ld_tail_logps(values[chosen], mask[chosen], values[rejected], mask[rejected])
        outputs[f"{model}_chosen_tail_logps"], outputs[f"{model}_rejected_tail_logps"] = tails
    found = build_zoo(name, record)(outputs)
    found.backward()
    assert_close(found, expected, f"{name} value vs ms-swift {record.name}")
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs ms-swift {record.name}")
