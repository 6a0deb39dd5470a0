"""Every ``equal`` row of the name table, checked against ms-swift's and TRL's own loss functions.

The rows come from :data:`swift_zoo.integrations.ms_swift._correspondence.CORRESPONDENCES`, so a new
``equal`` claim is tested here without a new test. Each case calls ms-swift's (or TRL's) function
and the zoo adapter that ms-swift runs, on the same float64 inputs in ms-swift's layout, and
compares the loss and its gradient. The training-run tests (``test_sft.py``, ``test_rlhf.py``)
compare whole runs for the rows the issue names.
"""

from __future__ import annotations

import collections
from types import SimpleNamespace

import pytest
import torch

from swift_zoo.integrations.ms_swift import external_plugin_path
from swift_zoo.integrations.ms_swift._correspondence import CORRESPONDENCES, EQUAL

pytest.importorskip("swift.rlhf_trainers", reason="needs ms-swift 4.6")

FUNCTION_KINDS = ("loss_map", "dpo", "cpo", "kto")
# ms-swift's DPO "sft" reads the NLL its forward pass computed (model_output["nll_loss"]): compared by a run
CASES = [c for c in CORRESPONDENCES if c.relation == EQUAL and c.host[0] in FUNCTION_KINDS and c.host != ("dpo", "sft")]
RUN_CASES = {c.zoo for c in CORRESPONDENCES if c.relation == EQUAL} - {c.zoo for c in CASES}
DEVICE = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def installed():
    from swift.utils.utils import import_external_file

    import_external_file(str(external_plugin_path()))  # what --external_plugins does


def test_every_equal_row_is_tested():
    """Rows not checked here are checked by a whole training run (test_sft.py, test_rlhf.py)."""
    assert RUN_CASES == {"dft", "sft"}


def _trainer(**attributes):
    args = SimpleNamespace(beta=0.1, label_smoothing=0.0, discopop_tau=0.05, rpo_alpha=None, cpo_alpha=0.0,
                           simpo_gamma=None, desirable_weight=1.0, undesirable_weight=1.0)
    for key, value in attributes.pop("settings", {}).items():
        setattr(args, key, value)
    accelerator = SimpleNamespace(device=DEVICE, gather_for_metrics=lambda x: x, num_processes=1)
    base = dict(args=args, accelerator=accelerator, beta=args.beta, label_smoothing=args.label_smoothing,
                reference_free=False, f_divergence_type="reverse_kl", f_divergence_params={},
                model=SimpleNamespace(training=True), custom_metrics=None, alpha=0.0,
                simpo_gamma=args.simpo_gamma, cpo_alpha=args.cpo_alpha, desirable_weight=1.0,
                undesirable_weight=1.0, calculate_KL=True, current_gradient_accumulation_steps=1)
    base.update(attributes)
    return SimpleNamespace(**base)


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


def _dpo(case):
    from swift.rlhf_trainers.dpo_trainer import DPOTrainer

    chosen, rejected, ref_chosen, ref_rejected, chosen_len, rejected_len = _pairs()
    settings = dict(case.settings)
    if case.host[1] == "exo_pair":
        settings["label_smoothing"] = 0.0  # ms-swift reads 0 as 1e-3
    output = {"chosen_completion_token_counts": chosen_len, "rejected_completion_token_counts": rejected_len}
    host_in = _leaves(chosen, rejected)
    scale = (1.0 / chosen_len.double(), 1.0 / rejected_len.double()) if case.host[1] == "ipo" else (1.0, 1.0)
    host = _trainer(settings=settings, label_smoothing=settings.get("label_smoothing", 0.0))
    host_losses, *_ = DPOTrainer.dpo_loss.__wrapped__(
        host, host_in[0] * scale[0], host_in[1] * scale[1], ref_chosen * scale[0], ref_rejected * scale[1],
        case.host[1], output)
    zoo_in = _leaves(chosen, rejected)
    zoo = _trainer(settings=settings, loss_type=[f"zoo:{case.zoo}"])
    zoo_losses, *_ = DPOTrainer.dpo_loss(zoo, zoo_in[0], zoo_in[1], ref_chosen, ref_rejected, f"zoo:{case.zoo}",
                                         output)
    _compare(host_losses.mean(), host_in, zoo_losses.mean(), zoo_in)


def _cpo(case):
    from swift.rlhf_trainers.cpo_trainer import CPOTrainer

    chosen, rejected, _, _, chosen_len, rejected_len = _pairs(seed=1)
    averaged = case.host[1] in ("simpo", "ipo")  # TRL averages only for its own simpo / ipo
    settings = {**case.settings, "beta": 2.0, "simpo_gamma": 1.0}
    host_in = _leaves(chosen, rejected)
    host = _trainer(settings=settings, loss_type=case.host[1], beta=2.0, simpo_gamma=1.0)
    host_losses, *_ = CPOTrainer.cpo_loss.__wrapped__(
        host, host_in[0] / chosen_len if averaged else host_in[0], host_in[1] / rejected_len if averaged else host_in[1])
    zoo_in = _leaves(chosen, rejected)
    zoo = _trainer(settings=settings, loss_type=f"zoo:{case.zoo}", beta=2.0, _swift_zoo_pair_lengths=(chosen_len,
                                                                                                        rejected_len))
    zoo_losses, *_ = CPOTrainer.cpo_loss(zoo, zoo_in[0], zoo_in[1])
    _compare(host_losses.mean(), host_in, zoo_losses.mean(), zoo_in)


def _kto(case):
    from swift.rlhf_trainers.kto_trainer import KTOTrainer

    generator = torch.Generator().manual_seed(2)
    policy = torch.randn(4, 5, generator=generator, dtype=torch.float64) - 8.0
    chosen, rejected, kl_policy, kl_reference = policy
    ref_chosen, ref_rejected = chosen + 0.3 * torch.randn(2, 5, generator=generator, dtype=torch.float64)
    needs_kl = case.host[1] == "kto"
    host_in = _leaves(chosen[:3], rejected)
    host = _trainer(loss_type=case.host[1], calculate_KL=needs_kl)
    host_losses, *_ = KTOTrainer.kto_loss.__wrapped__(host, host_in[0], host_in[1], kl_policy, ref_chosen[:3],
                                                      ref_rejected, kl_reference)
    zoo_in = _leaves(chosen[:3], rejected)
    zoo = _trainer(loss_type=f"zoo:{case.zoo}", calculate_KL=needs_kl)
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


def _loss_map(case):
    from swift.loss import loss_map

    generator = torch.Generator().manual_seed(3)
    name = case.host[1]
    task = {"cross_entropy": "causal_lm", "pointwise_reranker": "reranker", "listwise_reranker": "reranker"}.get(
        name, "embedding")
    trainer = _trainer(task_type=task, template=SimpleNamespace(sequence_parallel_size=1))
    args = SimpleNamespace(loss_type=name, task_type=task)
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
        outputs, labels = _embedding_case(name, generator)
    key = "logits" if "logits" in outputs else "last_hidden_state"
    # embeddings reach the loss L2-normalised by the model (ms-swift's patch_output_normalizer)
    shown = (lambda x: x) if key == "logits" else (lambda x: torch.nn.functional.normalize(x, dim=-1))
    host_in = _leaves(outputs[key])
    host_value = loss_map[name](args, trainer)(SimpleNamespace(**{key: shown(host_in[0])}) if key == "logits"
                                               else {key: shown(host_in[0])}, labels, num_items_in_batch=num_items)
    zoo_in = _leaves(outputs[key])
    zoo_value = loss_map[f"zoo:{case.zoo}"](args, trainer)({key: shown(zoo_in[0])}, labels,
                                                           num_items_in_batch=num_items)
    _compare(host_value, host_in, zoo_value, zoo_in, rel=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.zoo}={c.host[0]}:{c.host[1]}" for c in CASES])
def test_equal_row(case):
    {"dpo": _dpo, "cpo": _cpo, "kto": _kto, "loss_map": _loss_map}[case.host[0]](case)


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
