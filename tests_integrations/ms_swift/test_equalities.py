"""Every ms-swift equality the losses declare, run through this integration's adapters.

The cases are the losses' own ``equivalents`` records for library ``ms-swift`` that say ``equal`` and
whose loss runs in ms-swift through the integration (``nox -s references`` compares the same records
with the bare zoo loss). Each case parses the ms-swift command of the record (``--rlhf_type dpo
--loss_type robust --label_smoothing 0.1``), calls ms-swift's (or TRL 0.29's) own function with those
settings, and the zoo adapter ms-swift would run, with the kwargs the adapter takes from the same
arguments plus the record's other zoo kwargs through ``SWIFT_ZOO_LOSS_KWARGS``; on the same float64
inputs in ms-swift's layout it compares the loss and its gradient. A new declaration is tested here
without a new test; one the adapter cannot take by a function call is compared by a training run.
"""

from __future__ import annotations

import collections
import json
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import swift_zoo
from swift_zoo.integrations.ms_swift import external_plugin_path
from swift_zoo.integrations.ms_swift._families import classify
from swift_zoo.integrations.ms_swift._name_table import equivalences
from swift_zoo.integrations.ms_swift._plan import loss_kwargs

pytest.importorskip("swift.rlhf_trainers", reason="needs ms-swift 4.6")

DEVICE = torch.device("cpu")
# compared by a whole training run instead: ms-swift computes them in its forward or trainer step
RUN_TESTED = {
    "--enable_dft_loss true": "test_sft.py::test_zoo_dft_equals_enable_dft_loss",
    "--rlhf_type dpo --loss_type sft": "test_rlhf.py::test_zoo_sft_equals_dpo_sft",
    "--rlhf_type orpo --beta 0.1": "test_rlhf.py::test_zoo_orpo_equals_orpo",
}
# declared equal against flags that ms-swift 4.6's `swift rlhf` does not take (only its Megatron trainer has them)
NOT_HF_ARGUMENTS = ("--f_divergence_type", "--f_alpha_divergence_coef")


def _declared():
    cases = []
    for entry in sorted(swift_zoo.list_losses(), key=lambda e: e.name):
        if entry.distribution != "swift-loss-zoo":
            continue
        cls = swift_zoo.REGISTRY.load_entry(entry)
        family = classify(cls.inputs) if cls.inputs else None
        for record in equivalences(cls):
            if record.equal and family is not None and not family.unsupported:
                cases.append((entry.name, record))
    return cases


DECLARED = _declared()
CASES = [(name, record) for name, record in DECLARED
         if record.name not in RUN_TESTED and not any(flag in record.name for flag in NOT_HF_ARGUMENTS)]


def _flags(command: str) -> dict[str, list[str]]:
    """``"--rlhf_type dpo --loss_type a b --beta 2"`` -> ``{"rlhf_type": ["dpo"], "loss_type": ["a", "b"], ...}``."""
    flags: dict[str, list[str]] = {}
    key = None
    for token in shlex.split(command):
        if token.startswith("--"):
            key = token[2:]
            flags[key] = []
        elif key is not None:
            flags[key].append(token)
    return flags


@pytest.fixture(scope="module", autouse=True)
def installed():
    from swift.utils.utils import import_external_file

    import_external_file(str(external_plugin_path()))  # what --external_plugins does


def test_the_declarations_give_cases():
    kinds = {_flags(record.name).get("rlhf_type", ["sft"])[0] for _, record in CASES}
    assert {"dpo", "cpo", "simpo", "kto", "sft"} <= kinds
    assert {record.name for _, record in DECLARED} >= set(RUN_TESTED)
    here = Path(__file__).parent
    for where in RUN_TESTED.values():
        module, test = where.split("::")
        assert f"def {test}(" in (here / module).read_text(), where


def _trainer(flags=None, **attributes):
    """A stand-in for ms-swift's trainer: ms-swift's argument defaults, then the record's flags."""
    args = SimpleNamespace(beta=0.1, label_smoothing=0.0, discopop_tau=0.05, rpo_alpha=None, cpo_alpha=1.0,
                           simpo_gamma=1.0, desirable_weight=1.0, undesirable_weight=1.0)
    rlhf_type = (flags or {}).get("rlhf_type", [None])[0]
    if rlhf_type == "simpo":  # RLHFArguments._init_simpo
        args.beta = 2.0
    for key, values in (flags or {}).items():
        if key not in ("rlhf_type", "loss_type", "task_type", "loss_weights") and values:
            setattr(args, key, float(values[0]) if re.fullmatch(r"[-+.\de]+", values[0]) else values[0])
    accelerator = SimpleNamespace(device=DEVICE, gather_for_metrics=lambda x: x, num_processes=1)
    base = dict(args=args, accelerator=accelerator, beta=args.beta, label_smoothing=args.label_smoothing,
                reference_free=False, f_divergence_type="reverse_kl", f_divergence_params={},
                model=SimpleNamespace(training=True), custom_metrics=None, alpha=0.0,
                simpo_gamma=args.simpo_gamma, cpo_alpha=args.cpo_alpha, desirable_weight=args.desirable_weight,
                undesirable_weight=args.undesirable_weight, calculate_KL=True,
                current_gradient_accumulation_steps=1)
    base.update(attributes)
    return SimpleNamespace(**base)


@pytest.fixture
def zoo_kwargs(monkeypatch):
    """Give the adapter the record's zoo kwargs that no ms-swift argument binds (SWIFT_ZOO_LOSS_KWARGS)."""

    def give(name, record, args, rlhf_type):
        cls = swift_zoo.get_loss(name)
        monkeypatch.delenv("SWIFT_ZOO_LOSS_KWARGS", raising=False)
        bound, _, _ = loss_kwargs(cls, cls.name, args, f"zoo:{name}", rlhf_type)
        for key, value in record.zoo_kwargs.items():
            if key in bound:
                assert bound[key] == pytest.approx(value), f"--{key} binds {bound[key]!r}, the record says {value!r}"
        rest = {k: v for k, v in record.zoo_kwargs.items() if k not in bound}
        if rest:
            monkeypatch.setenv("SWIFT_ZOO_LOSS_KWARGS", json.dumps(rest))

    return give


def _leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def _pairs(seed=0, batch=6):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 9, (2, batch), generator=generator)
    logps = -1.2 * lengths.double() + 0.6 * torch.randn(4, batch, generator=generator, dtype=torch.float64)[:2]
    reference = -1.2 * lengths.double() + 0.6 * torch.randn(2, batch, generator=generator, dtype=torch.float64)
    return logps[0], logps[1], reference[0], reference[1], lengths[0], lengths[1]


def _compare(host_value, host_inputs, zoo_value, zoo_inputs, rel=1e-9):
    """Equal values and gradients; ``rel`` 1e-6 where ms-swift computes in float32 (``logits.float()``)."""
    assert zoo_value.item() == pytest.approx(host_value.item(), rel=rel, abs=1e-12)
    host_grads = torch.autograd.grad(host_value, host_inputs, allow_unused=True)
    zoo_grads = torch.autograd.grad(zoo_value, zoo_inputs, allow_unused=True)
    for host_grad, zoo_grad in zip(host_grads, zoo_grads):
        torch.testing.assert_close(zoo_grad, host_grad, rtol=rel, atol=1e-9 if rel > 1e-9 else 1e-12)


def _dpo(name, flags):
    from swift.rlhf_trainers.dpo_trainer import DPOTrainer

    (loss_type,) = flags.get("loss_type", ["sigmoid"])
    chosen, rejected, ref_chosen, ref_rejected, chosen_len, rejected_len = _pairs()
    output = {"chosen_completion_token_counts": chosen_len, "rejected_completion_token_counts": rejected_len}
    # ms-swift divides its own ipo's log-probs by the token counts before dpo_loss (dpo_trainer.py:392)
    scale = (1.0 / chosen_len.double(), 1.0 / rejected_len.double()) if loss_type == "ipo" else (1.0, 1.0)
    host_in = _leaves(chosen, rejected)
    host_losses, *_ = DPOTrainer.dpo_loss.__wrapped__(
        _trainer(flags), host_in[0] * scale[0], host_in[1] * scale[1], ref_chosen * scale[0], ref_rejected * scale[1],
        loss_type, output)
    zoo_in = _leaves(chosen, rejected)
    zoo_losses, *_ = DPOTrainer.dpo_loss(_trainer(flags, loss_type=[f"zoo:{name}"]), zoo_in[0], zoo_in[1],
                                         ref_chosen, ref_rejected, f"zoo:{name}", output)
    _compare(host_losses.mean(), host_in, zoo_losses.mean(), zoo_in)


def _cpo(name, flags):
    from swift.rlhf_trainers.cpo_trainer import CPOTrainer

    (rlhf_type,) = flags["rlhf_type"]
    loss_type = "simpo" if rlhf_type == "simpo" else flags.get("loss_type", ["sigmoid"])[0]
    chosen, rejected, _, _, chosen_len, rejected_len = _pairs(seed=1)
    averaged = loss_type in ("simpo", "ipo")  # TRL averages the log-probs only for its own simpo / ipo
    host_in = _leaves(chosen, rejected)
    host_losses, *_ = CPOTrainer.cpo_loss.__wrapped__(
        _trainer(flags, loss_type=loss_type), host_in[0] / chosen_len if averaged else host_in[0],
        host_in[1] / rejected_len if averaged else host_in[1])
    zoo_in = _leaves(chosen, rejected)
    zoo = _trainer(flags, loss_type=f"zoo:{name}", _swift_zoo_pair_lengths=(chosen_len, rejected_len))
    zoo_losses, *_ = CPOTrainer.cpo_loss(zoo, zoo_in[0], zoo_in[1])
    # TRL adds cpo_alpha * NLL outside cpo_loss for both; the records say --cpo_alpha 0
    _compare(host_losses.mean(), host_in, zoo_losses.mean(), zoo_in)


def _kto(name, flags):
    from swift.rlhf_trainers.kto_trainer import KTOTrainer

    loss_type = flags.get("loss_type", ["kto"])[0]
    generator = torch.Generator().manual_seed(2)
    policy = torch.randn(4, 5, generator=generator, dtype=torch.float64) - 8.0
    chosen, rejected, kl_policy, kl_reference = policy
    ref_chosen, ref_rejected = chosen + 0.3 * torch.randn(2, 5, generator=generator, dtype=torch.float64)
    needs_kl = loss_type == "kto"  # ms-swift's KTOTrainer.__init__: no KL pass for apo_zero_unpaired
    host_in = _leaves(chosen[:3], rejected)
    host_losses, *_ = KTOTrainer.kto_loss.__wrapped__(_trainer(flags, loss_type=loss_type, calculate_KL=needs_kl),
                                                      host_in[0], host_in[1], kl_policy, ref_chosen[:3],
                                                      ref_rejected, kl_reference)
    zoo_in = _leaves(chosen[:3], rejected)
    zoo = _trainer(flags, loss_type=f"zoo:{name}", calculate_KL=needs_kl)
    zoo_losses, *_ = KTOTrainer.kto_loss(zoo, zoo_in[0], zoo_in[1], kl_policy, ref_chosen[:3], ref_rejected,
                                         kl_reference)
    _compare(host_losses.nanmean(), host_in, zoo_losses.nanmean(), zoo_in)


def _embedding_case(name, generator):
    if name == "infonce":  # per sample: anchor, positive, negatives (3, 1 and 2 of them)
        counts = (3, 1, 2)
        labels = torch.tensor([v for n in counts for v in [1.0] + [0.0] * n])
        rows = torch.randn(labels.numel() + len(counts), 8, generator=generator, dtype=torch.float64)
    else:
        labels = torch.rand(5, generator=generator, dtype=torch.float64)
        if name != "cosine_similarity":
            labels = (labels > 0.5).double()
        rows = torch.randn(10, 8, generator=generator, dtype=torch.float64)
    return {"last_hidden_state": rows}, labels


def _loss_map(name, flags):
    from swift.loss import loss_map

    generator = torch.Generator().manual_seed(3)
    (host,) = flags["loss_type"]
    task = flags.get("task_type", ["causal_lm"])[0]
    trainer = _trainer(task_type=task, template=SimpleNamespace(sequence_parallel_size=1))
    args = SimpleNamespace(loss_type=host, task_type=task)
    num_items = None
    if task == "causal_lm":
        logits = torch.randn(3, 7, 11, generator=generator, dtype=torch.float64)
        labels = torch.randint(0, 11, (3, 7), generator=generator)
        labels[:, :2] = -100
        labels[1, 5:] = -100
        outputs, num_items = {"logits": logits}, (labels[:, 1:] != -100).sum() * 2  # a two-micro-batch window
    elif task == "reranker":
        labels = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0, 0])
        outputs = {"logits": torch.randn(9, 1, generator=generator, dtype=torch.float64)}
    else:
        outputs, labels = _embedding_case(host, generator)
    key = "logits" if "logits" in outputs else "last_hidden_state"
    # embeddings reach the loss L2-normalised by the model (ms-swift's patch_output_normalizer)
    shown = (lambda x: x) if key == "logits" else (lambda x: torch.nn.functional.normalize(x, dim=-1))
    host_in = _leaves(outputs[key])
    host_value = loss_map[host](args, trainer)(SimpleNamespace(**{key: shown(host_in[0])}) if key == "logits"
                                               else {key: shown(host_in[0])}, labels, num_items_in_batch=num_items)
    zoo_in = _leaves(outputs[key])
    zoo_value = loss_map[f"zoo:{name}"](args, trainer)({key: shown(zoo_in[0])}, labels, num_items_in_batch=num_items)
    _compare(host_value, host_in, zoo_value, zoo_in, rel=1e-6)  # ms-swift computes in float32 (logits.float())


RUNNERS = {"dpo": _dpo, "cpo": _cpo, "simpo": _cpo, "kto": _kto, "sft": _loss_map}


@pytest.mark.parametrize(("name", "record"), CASES, ids=[f"{n}={r.name}" for n, r in CASES])
def test_declared_equality_through_the_adapter(name, record, zoo_kwargs):
    flags = _flags(record.name)
    rlhf_type = flags.get("rlhf_type", ["sft"])[0]
    zoo_kwargs(name, record, _trainer(flags).args, None if rlhf_type == "sft" else rlhf_type)
    RUNNERS[rlhf_type](name, flags)


def test_loss_scale_weights_each_token_like_ms_swift():
    """ms-swift's per-token loss_scale (rolled by -1, flattened) gives the same loss through the zoo adapter."""
    from swift.loss import loss_map

    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 6, 9, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 9, (2, 6), generator=generator)
    labels[:, 0] = -100
    scale = torch.rand(2, 6, generator=generator, dtype=torch.float64) * 2
    rolled = torch.roll(scale, shifts=-1, dims=-1).view(-1)  # what Seq2SeqTrainer.compute_loss passes
    trainer = _trainer(task_type="causal_lm", template=SimpleNamespace(sequence_parallel_size=1))
    args = SimpleNamespace(loss_type="cross_entropy", task_type="causal_lm")
    count = (labels[:, 1:] != -100).sum()
    host_in, zoo_in = _leaves(logits), _leaves(logits)
    host_value = loss_map["cross_entropy"](args, trainer)(SimpleNamespace(logits=host_in[0]), labels,
                                                          num_items_in_batch=count, loss_scale=rolled)
    zoo_value = loss_map["zoo:cross_entropy"](args, trainer)({"logits": zoo_in[0]}, labels, num_items_in_batch=count,
                                                              loss_scale=rolled)
    _compare(host_value, host_in, zoo_value, zoo_in, rel=1e-6)


def test_metrics_reach_custom_metrics():
    from swift.loss import loss_map
    from swift.metrics import MeanMetric

    metrics = {"train": collections.defaultdict(lambda: MeanMetric(nan_value=None, device="cpu")),
               "eval": collections.defaultdict(MeanMetric)}
    trainer = _trainer(task_type="causal_lm", custom_metrics=metrics)
    logits = torch.randn(2, 5, 7, dtype=torch.float64)
    labels = torch.randint(0, 7, (2, 5))
    loss_map["zoo:cross_entropy"](SimpleNamespace(task_type="causal_lm"), trainer)({"logits": logits}, labels,
                                                                                   num_items_in_batch=8)
    assert 0.0 <= metrics["train"]["zoo/token_accuracy"].compute()["value"] <= 1.0


def test_weighted_sum_runs_in_the_dpo_adapter(monkeypatch):
    """zoo:weighted_sum of dpo and hinge under --rlhf_type dpo = ms-swift's sigmoid + 0.5 hinge."""
    from swift.rlhf_trainers.dpo_trainer import DPOTrainer

    monkeypatch.setenv("SWIFT_ZOO_LOSS_KWARGS",
                       '{"losses": [{"type": "dpo", "weight": 1.0}, {"type": "hinge", "weight": 0.5}]}')
    chosen, rejected, ref_chosen, ref_rejected, chosen_len, rejected_len = _pairs(seed=5)
    output = {"chosen_completion_token_counts": chosen_len, "rejected_completion_token_counts": rejected_len}
    host_in = _leaves(chosen, rejected)
    host = _trainer()
    sigmoid, *_ = DPOTrainer.dpo_loss.__wrapped__(host, *host_in, ref_chosen, ref_rejected, "sigmoid", output)
    hinge, *_ = DPOTrainer.dpo_loss.__wrapped__(host, *host_in, ref_chosen, ref_rejected, "hinge", output)
    zoo_in = _leaves(chosen, rejected)
    zoo = _trainer(loss_type=["zoo:weighted_sum"])
    zoo_losses, *_ = DPOTrainer.dpo_loss(zoo, *zoo_in, ref_chosen, ref_rejected, "zoo:weighted_sum", output)
    _compare(sigmoid.mean() + 0.5 * hinge.mean(), host_in, zoo_losses.mean(), zoo_in)
