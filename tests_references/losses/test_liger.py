"""Losses declared equal to Liger-Kernel 0.8.5's fused-linear losses, on their loss functions.

Liger's ``LigerFusedLinear{DPO,SimPO,CPO,ORPO}Loss`` run the model's LM head chunk by chunk and apply the
static ``preference_loss_fn`` of the matching ``...Function`` to each chunk's sequence log-probs (summing,
and dividing by the number of pairs of the whole batch). The comparison calls that ``preference_loss_fn`` on
the whole batch as one chunk, with the hyperparameters of the declared constructor spelling (bound to the
constructor's signature, so a misspelt keyword fails). The NLL term of the fused modules
(``compute_nll_loss`` / ``alpha``) is off in the declared spellings. ``LigerFusedLinearJSDLoss`` applies
``distillation_loss_fn`` to each chunk's temperature-scaled logits and divides the sum by the batch's valid
tokens (``fused_linear_distillation.py``): the comparison does the same on one chunk.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from _loss_equivalences import assert_close, build_zoo, declared, parse_call, record_id

pytest.importorskip("liger_kernel", reason="liger-kernel is not installed (the references nox session installs "
                                           "liger-kernel==0.8.5 with --no-deps)")
from liger_kernel.chunked_loss.cpo_loss import LigerFusedLinearCPOFunction, LigerFusedLinearCPOLoss
from liger_kernel.chunked_loss.dpo_loss import LigerFusedLinearDPOFunction, LigerFusedLinearDPOLoss
from liger_kernel.chunked_loss.jsd_loss import LigerFusedLinearJSDFunction, LigerFusedLinearJSDLoss
from liger_kernel.chunked_loss.orpo_loss import LigerFusedLinearORPOFunction, LigerFusedLinearORPOLoss
from liger_kernel.chunked_loss.simpo_loss import LigerFusedLinearSimPOFunction, LigerFusedLinearSimPOLoss

JSD_RECORDS = declared("liger", "LigerFusedLinearJSDLoss(")
# module name -> (module, function, the hyperparameters preference_loss_fn takes, whether it reads averages)
MODULES = {
    "LigerFusedLinearDPOLoss": (LigerFusedLinearDPOLoss, LigerFusedLinearDPOFunction,
                                ("beta", "loss_type", "label_smoothing", "discopop_tau"), False),
    "LigerFusedLinearSimPOLoss": (LigerFusedLinearSimPOLoss, LigerFusedLinearSimPOFunction,
                                  ("beta", "gamma", "label_smoothing"), True),
    "LigerFusedLinearCPOLoss": (LigerFusedLinearCPOLoss, LigerFusedLinearCPOFunction,
                                ("beta", "label_smoothing"), False),
    "LigerFusedLinearORPOLoss": (LigerFusedLinearORPOLoss, LigerFusedLinearORPOFunction, ("beta",), True),
}
# the preference modules' records; the JSD ones are below, the policy losses' in test_policy_liger.py
RECORDS = [item for item in declared("liger") if item[1].name.partition("(")[0] in MODULES]
COVERED_ELSEWHERE = ("LigerFusedLinearJSDLoss", "LigerFusedLinearGRPOLoss")
PAIRS = 5


def test_every_liger_record_has_a_comparison():
    """A declared Liger equivalence whose module no test here or in test_policy_liger.py reads fails, not skips."""
    uncovered = sorted(record.name for _, record in declared("liger")
                       if record.name.partition("(")[0] not in (*MODULES, *COVERED_ELSEWHERE))
    assert not uncovered, f"expected every Liger record compared by a test, found none for {uncovered}"


@pytest.mark.parametrize("item", RECORDS, ids=[record_id(item) for item in RECORDS])
@pytest.mark.parametrize("seed", [0, 1])
def test_preference_equals_liger(item, seed):
    name, record = item
    module_name, kwargs = parse_call(record.name)
    module, function, used, averaged_logps = MODULES[module_name]
    bound = inspect.signature(module.__init__).bind(None, **kwargs)
    bound.apply_defaults()
    nll_on = bound.arguments.get("compute_nll_loss", False) and bound.arguments.get("alpha", 1.0) != 0.0
    assert not nll_on, "the NLL term is not part of the comparison: declare compute_nll_loss=False or alpha=0.0"
    if "average_log_prob" in bound.arguments:  # DPO and CPO score summed log-probs unless told to average
        assert bound.arguments["average_log_prob"] == averaged_logps
    hyper = {key: bound.arguments[key] for key in used}
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 9, (2, PAIRS), generator=generator)
    summed = -(0.2 + 1.5 * torch.rand(4, PAIRS, generator=generator, dtype=torch.float64)) * lengths.repeat(2, 1)
    leaf = summed[:2].clone().requires_grad_(True)
    reference = summed[2:]
    full_target = torch.zeros(2 * PAIRS, 1)
    if function is not LigerFusedLinearDPOFunction:  # reference-free: policy log-probs only
        logps = leaf / lengths if averaged_logps else leaf
        expected = function.preference_loss_fn(logps[0], logps[1], full_target, **hyper)
    else:
        expected = function.preference_loss_fn(leaf[0], leaf[1], full_target, reference[0], reference[1], **hyper)
    expected = expected[0] if isinstance(expected, tuple) else expected
    expected.backward()
    expected_grad = leaf.grad.clone()
    leaf.grad = None
    outputs = {"policy_chosen_logps": leaf[0], "policy_rejected_logps": leaf[1],
               "reference_chosen_logps": reference[0], "reference_rejected_logps": reference[1],
               "chosen_lengths": lengths[0], "rejected_lengths": lengths[1]}
    found = build_zoo(name, record)(outputs)
    found.backward()
    assert_close(found, expected, f"{name} value vs Liger {record.name}")
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs Liger {record.name}")


@pytest.mark.parametrize("item", JSD_RECORDS, ids=[record_id(item) for item in JSD_RECORDS])
def test_generalized_jsd_equals_liger(item):
    name, record = item
    _, kwargs = parse_call(record.name)
    bound = inspect.signature(LigerFusedLinearJSDLoss.__init__).bind(None, **kwargs)
    bound.apply_defaults()
    assert bound.arguments["weight_hard_loss"] == 0.0 and bound.arguments["weight_soft_loss"] == 1.0
    temperature, beta = bound.arguments["temperature"], bound.arguments["beta"]
    generator = torch.Generator().manual_seed(0)
    teacher = 2.0 * torch.randn(3, 6, 11, generator=generator, dtype=torch.float64)
    student = teacher + torch.randn(3, 6, 11, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 6), generator=generator)
    labels[:, :2] = -100
    labels[2, -2:] = -100
    leaf = student.clone().requires_grad_(True)
    target = labels[:, 1:].reshape(-1)
    soft = LigerFusedLinearJSDFunction.distillation_loss_fn(
        leaf[:, :-1].reshape(-1, 11) / temperature, teacher[:, :-1].reshape(-1, 11) / temperature,
        beta=beta, target=target, ignore_index=bound.arguments["ignore_index"])
    expected = soft / (target != bound.arguments["ignore_index"]).sum()
    expected.backward()
    expected_grad = leaf.grad.clone()
    leaf.grad = None
    found = build_zoo(name, record)({"student_logits": leaf, "teacher_logits": teacher}, labels)
    found.backward()
    assert_close(found, expected, f"{name} value vs Liger {record.name}")
    assert_close(leaf.grad, expected_grad, f"{name} gradient vs Liger {record.name}")
