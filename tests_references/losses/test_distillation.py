"""Distillation losses declared equal to TRL 1.16's GKD / server-distillation code and verl 0.9.1's top-k KL.

* ``GKDTrainer.generalized_jsd_loss`` is a static function on aligned logits and labels: called directly.
* ``ServerDistillationTrainer._compute_server_forward_kl_loss(teacher_result, student_log_probs, labels)`` is
  called on a trainer made without ``__init__`` carrying the config's ``loss_add_tail``; the student
  log-probs are ``log_softmax(logits / temperature)`` as the trainer computes them.
* verl's ``trainer.distillation.fsdp.losses.compute_forward_kl_topk`` (the per-token top-k KL of the FSDP
  logits processor, on nested teacher tensors) is called directly; the two clamps verl applies after it
  (``clamp_min(0)`` in ``losses.compute_forward_kl_topk``, ``+-loss_max_clamp`` in ``distillation_loss``) are
  applied to its per-token output as written there, and the token mean is taken over the response tokens.

The zoo losses take the unshifted ``[B, T, V]`` logits and labels (logits at ``t`` scored where
``labels[t + 1] != -100``); the libraries take them aligned, so they get ``[:, :-1]`` and ``labels[:, 1:]``.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from _loss_equivalences import assert_close, build_zoo, declared, parse_call, record_id

BATCH, WIDTH, VOCAB, TOPK = 3, 7, 13, 3
GKD = declared("trl", "GKDTrainer.generalized_jsd_loss(")
SERVER = declared("trl", "ServerDistillationConfig(")
VERL = declared("verl", "DistillationLossConfig(")


def logits_and_labels(seed: int):
    generator = torch.Generator().manual_seed(seed)
    teacher = 2.0 * torch.randn(BATCH, WIDTH, VOCAB, generator=generator, dtype=torch.float64)
    student = teacher + torch.randn(BATCH, WIDTH, VOCAB, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, VOCAB, (BATCH, WIDTH), generator=generator)
    labels[:, :2] = -100
    labels[1, -2:] = -100
    return student, teacher, labels


def teacher_topk(teacher: torch.Tensor, *, ragged: bool):
    top = torch.log_softmax(teacher, dim=-1).topk(TOPK, dim=-1)
    values, indices = top.values.clone(), top.indices.clone()
    if ragged:  # a teacher server that returned fewer than k tokens pads with -inf (and id 0)
        values[0, 3, -1] = -torch.inf
        indices[0, 3, -1] = 0
        values[2, 4, 1:] = -torch.inf
        indices[2, 4, 1:] = 0
    return values, indices


def compare(name, record, leaf, expected, outputs, labels):
    expected.backward()
    expected_grad = leaf.grad.clone()
    leaf.grad = None
    found = build_zoo(name, record)(outputs, labels)
    found.backward()
    assert_close(found, expected, f"{name} value vs {record.library} {record.name}")
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs {record.library} {record.name}")


@pytest.mark.parametrize("item", GKD, ids=[record_id(item) for item in GKD])
@pytest.mark.parametrize("seed", [0, 1])
def test_generalized_jsd_equals_trl_gkd(item, seed):
    pytest.importorskip("trl", reason="TRL is not installed (the references nox session installs trl==1.16.0)")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.gkd import GKDTrainer

    name, record = item
    _, kwargs = parse_call(record.name)
    student, teacher, labels = logits_and_labels(seed)
    leaf = student.clone().requires_grad_(True)
    expected = GKDTrainer.generalized_jsd_loss(leaf[:, :-1], teacher[:, :-1], labels[:, 1:], **kwargs)
    compare(name, record, leaf, expected, {"student_logits": leaf, "teacher_logits": teacher}, labels)


@pytest.mark.parametrize("item", SERVER, ids=[record_id(item) for item in SERVER])
@pytest.mark.parametrize("seed", [0, 1])
def test_forward_kl_topk_equals_trl_server_distillation(item, seed, tmp_path):
    pytest.importorskip("trl", reason="TRL is not installed (the references nox session installs trl==1.16.0)")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.server_distillation.server_distillation_config import ServerDistillationConfig
    from trl.experimental.server_distillation.server_distillation_trainer import ServerDistillationTrainer

    name, record = item
    _, kwargs = parse_call(record.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = ServerDistillationConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, beta=0.0,
                                          teacher_model_server_url="http://127.0.0.1:1", **kwargs)  # never contacted
    student, teacher, labels = logits_and_labels(seed)
    values, indices = teacher_topk(teacher, ragged=True)
    trainer = ServerDistillationTrainer.__new__(ServerDistillationTrainer)
    trainer.args = config
    trainer.loss_add_tail = config.loss_add_tail
    trainer.temperature = config.temperature
    leaf = student.clone().requires_grad_(True)
    student_log_probs = torch.log_softmax(leaf[:, :-1] / trainer.temperature, dim=-1)
    teacher_result = {"topk_logprobs": values[:, :-1], "topk_token_ids": indices[:, :-1]}
    expected = ServerDistillationTrainer._compute_server_forward_kl_loss(
        trainer, teacher_result, student_log_probs, labels[:, 1:])
    # the declared zoo kwargs must set the config's temperature (TRL's default is 1.0, the zoo's too)
    assert record.zoo_kwargs.get("temperature", 1.0) == trainer.temperature
    outputs = {"student_logits": leaf, "teacher_topk_logps": values, "teacher_topk_indices": indices}
    compare(name, record, leaf, expected, outputs, labels)


@pytest.mark.parametrize("item", VERL, ids=[record_id(item) for item in VERL])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_kl_topk_equals_verl(item, seed):
    pytest.importorskip("verl", reason="verl is not installed (the references nox session installs verl==0.9.1 "
                                       "with --no-deps and its light imports)")
    try:
        from verl.trainer.distillation.fsdp.losses import compute_forward_kl_topk
        from verl.workers.config import DistillationConfig, DistillationLossConfig
    except ImportError as exc:  # verl comes with --no-deps: name the light import that is missing
        pytest.skip(f"verl is installed but its distillation modules do not import: {exc!r} (add it to "
                    "tests_references/requirements.txt)")

    name, record = item
    _, kwargs = parse_call(record.name)
    loss_config = DistillationLossConfig(**kwargs)
    config = DistillationConfig(distillation_loss=loss_config)
    student, teacher, labels = logits_and_labels(seed)
    top1 = torch.nn.functional.one_hot(teacher.argmax(-1), VOCAB)
    if seed == 1:  # a confident student: some tokens' truncated KL is negative, verl's clamp_min(0) matters
        student = student + 3.0 * top1
    if seed == 2:  # the student misses the teacher's top-1: log-probs below -10 and losses above 10 (the clamps)
        student = student - 14.0 * top1
    values, indices = teacher_topk(teacher, ragged=False)
    keep = labels[:, 1:] != -100
    leaf = student.clone().requires_grad_(True)
    # verl's logits processor sees the response tokens of all rows packed: (1, total_tokens, ...)
    rows = [leaf[b, :-1][keep[b]] for b in range(BATCH)]
    nested_values = torch.nested.nested_tensor([values[b, :-1][keep[b]] for b in range(BATCH)], layout=torch.jagged)
    nested_indices = torch.nested.nested_tensor([indices[b, :-1][keep[b]] for b in range(BATCH)],
                                            layout=torch.jagged)
    outputs = compute_forward_kl_topk(torch.cat(rows)[None], nested_values, nested_indices, config, "thd")
    per_token = outputs["distillation_losses"].clamp_min(0.0)  # verl losses.compute_forward_kl_topk
    if loss_config.loss_max_clamp is not None:  # verl losses.distillation_loss
        per_token = per_token.clamp(min=-loss_config.loss_max_clamp, max=loss_config.loss_max_clamp)
    expected = per_token.sum() / keep.sum()
    outputs = {"student_logits": leaf, "teacher_topk_logps": values, "teacher_topk_indices": indices}
    compare(name, record, leaf, expected, outputs, labels)
