"""Every loss check fails on a loss broken in its way, and every check passes on correct losses."""

from __future__ import annotations

import pytest
import torch
from conformance_broken_losses import (
    ArgmaxLoss,
    BadMetadataLoss,
    BatchMeanLoss,
    DeclaredOrderLoss,
    DetachedLoss,
    DtypeClampLoss,
    KwargsLoss,
    LeakyMaskLoss,
    LeakySequenceMaskLoss,
    LocalMeanLoss,
    MutatingLoss,
    NaiveExpLoss,
    NoUpcastLoss,
    OrderLoss,
    RandomLoss,
    RowMeanLoss,
    SequenceMaskLoss,
    TokenCountSequenceLoss,
    TokenLoss,
    UnguardedMaskLoss,
    UnmaskedLoss,
    VectorLoss,
    VersionBumpLoss,
    WrongBackwardLoss,
    WrongCountLoss,
)

import swift_zoo
from swift_loss_zoo.lm.cross_entropy import CrossEntropyLoss
from swift_zoo import testing
from swift_zoo.testing import CheckSkipped

BROKEN = [
    (VectorLoss, "check_scalar_output", ["expected a 0-dim tensor", "found shape (20,)"]),
    (DetachedLoss, "check_gradients_reach_inputs", ["requires_grad=False", "model_outputs['logits']"]),
    (ArgmaxLoss, "check_gradients_reach_inputs", ["expected a non-zero gradient", "found all zeros"]),
    (WrongBackwardLoss, "check_gradcheck", ["finite differences", "Jacobian mismatch", "numerical"]),
    (RandomLoss, "check_deterministic", ["expected two calls on the same inputs to give the same loss"]),
    (MutatingLoss, "check_inputs_not_mutated", ["expected labels unchanged", "modified in place"]),
    (VersionBumpLoss, "check_inputs_not_mutated", ["version counter went from 2 to 3", "values equal"]),
    (LocalMeanLoss, "check_microbatch_split",
     ["expected the sum of 2 micro-batch losses with num_items_in_batch=13 to equal the full-batch loss",
      "max |diff|"]),
    (RowMeanLoss, "check_microbatch_split", ["expected count_units on rows 0:2 to count the 6 tokens the declared "
                                             "masks keep (reduction_unit='token'), found 2", "averages each row first"]),
    (WrongCountLoss, "check_microbatch_split", ["expected count_units on rows 0:2 to count the 6 tokens", "found 10"]),
    (TokenCountSequenceLoss, "check_microbatch_split", ["count_units disagrees", "num_items_in_batch=14"]),
    (LeakyMaskLoss, "check_masking", ["expected the loss unchanged", "ignored position(s) of model_outputs['logits']",
                                      "leak"]),
    (UnguardedMaskLoss, "check_masking", ["expected zero gradient at the 49 ignored position(s) of model_outputs['logits'] "
                                          "set to NaN, found max |grad| nan there"]),
    (NoUpcastLoss, "check_low_precision", ["expected a finite loss for bfloat16 inputs (differentiable inputs x100)",
                                           "found nan"]),
    (DtypeClampLoss, "check_low_precision", ["expected the loss for float16 inputs to match the loss of the same values "
                                             "in float32", "within rtol 0.01"]),
    (NaiveExpLoss, "check_extreme_inputs", ["differentiable inputs scaled x10000", "found nan"]),
    (OrderLoss, "check_permutation", ["expected the loss unchanged when the batch is permuted", "order_dependent"]),
    (KwargsLoss, "check_unknown_kwargs_rejected", ["to raise swift_zoo.ConfigError", "never **kwargs"]),
    (BadMetadataLoss, "check_metadata", ["expected complete metadata, found 4 problem(s)", "name: expected lower snake case", "found 'Bad-Name'",
                                         "docstring: expected a class docstring", "reference: expected the paper",
                                         "reduction_unit: expected one of"]),
    (KwargsLoss, "check_metadata", ["found **kwargs"]),
]


@pytest.mark.parametrize(("cls", "check_name", "fragments"), BROKEN,
                         ids=[f"{c.__name__}-{n}" for c, n, _ in BROKEN])
def test_each_check_fails_on_a_loss_broken_its_way(cls, check_name, fragments):
    check = getattr(testing, check_name)
    with pytest.raises(swift_zoo.ConformanceError) as caught:
        check(cls)
    error = caught.value
    assert error.check == check_name
    assert error.subject == cls.name
    assert str(error).startswith(f"{check_name} failed for {cls.name}: expected")
    for fragment in fragments:
        assert fragment in str(error), str(error)


@pytest.mark.parametrize("cls", [VectorLoss, DetachedLoss, ArgmaxLoss, WrongBackwardLoss, RandomLoss, MutatingLoss,
                                 LocalMeanLoss, RowMeanLoss, LeakyMaskLoss, UnguardedMaskLoss, NoUpcastLoss, DtypeClampLoss, NaiveExpLoss, OrderLoss, KwargsLoss])
def test_the_unbroken_parent_passes_the_same_check(cls):
    # the failures above come from the defect, not from the harness
    for check_name in (name for broken, name, _ in BROKEN if broken is cls):
        assert getattr(testing, check_name)(TokenLoss) is not None


@pytest.mark.parametrize("loss", [CrossEntropyLoss, CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-4), TokenLoss],
                         ids=["cross_entropy", "cross_entropy_smoothed_zloss", "token_loss"])
def test_every_check_passes_on_correct_losses(loss, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = testing.check_loss(loss, on_fail="collect")
    assert report.ok, report.format_table()
    statuses = {r.name: r.status for r in report}
    assert statuses.pop("check_cuda") == "skipped"
    assert set(statuses.values()) == {"passed"}, report.format_table()
    assert list(statuses) + ["check_cuda"] != []  # every named check ran
    assert set(report.names) == set(testing.loss_checks())


def test_loss_suite_is_fast_on_cross_entropy():
    testing.check_loss(CrossEntropyLoss, on_fail="collect")  # warm-up: lazy torch internals
    report = testing.check_loss(CrossEntropyLoss, on_fail="collect")
    assert report.duration < 2.0, report.format_table()


def test_a_vector_output_points_every_check_at_check_scalar_output():
    report = testing.check_loss(VectorLoss, on_fail="collect")
    failed = {r.name: r.message for r in report if r.status == "failed" and r.name != "check_metadata"}
    assert failed.pop("check_scalar_output") == "expected a 0-dim tensor, found shape (20,)"
    assert failed, report.format_table()
    for check, message in failed.items():
        assert "(see check_scalar_output)" in message and "RuntimeError" not in message, (check, message)


def test_order_dependent_is_reported_exempt_with_its_reason():
    with pytest.raises(CheckSkipped, match="exempt: order_dependent declared: weights rows by their position"):
        testing.check_permutation(DeclaredOrderLoss)
    report = testing.check_loss(DeclaredOrderLoss, on_fail="collect", checks=["check_permutation"])
    assert report["check_permutation"].status == "skipped"
    assert "weights rows by their position" in report["check_permutation"].message


def test_batch_dependent_skips_the_split_check_with_its_reason():
    with pytest.raises(CheckSkipped, match="exempt: batch_dependent declared: centres every row on the batch mean"):
        testing.check_microbatch_split(BatchMeanLoss)


def test_masking_not_applicable_without_masked_by():
    with pytest.raises(CheckSkipped, match="no input declares masked_by"):
        testing.check_masking(UnmaskedLoss)


def test_cuda_check_skipped_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CheckSkipped, match="torch.cuda is not available"):
        testing.check_cuda(CrossEntropyLoss)


def test_masking_needs_ignored_positions_in_the_example():
    class NothingIgnored(TokenLoss):
        name = "nothing_ignored"
        inputs = (
            swift_zoo.TensorInput("logits", ("B", "T", "V"), differentiable=True, masked_by="labels"),
            swift_zoo.TensorInput("labels", ("B", "T"), dtype="int", role="labels"),
        )

        @classmethod
        def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu"):
            example = super().example_inputs(batch_size=batch_size, generator=generator, dtype=dtype, device=device)
            return swift_zoo.LossExample(example.model_outputs, example.labels.clamp(min=0))

    with pytest.raises(swift_zoo.ConformanceError, match="found none: make the example mask some positions"):
        testing.check_masking(NothingIgnored)


def test_masking_with_a_role_mask_input():
    assert "ignored position(s) of model_outputs['per_token_logps']" in testing.check_masking(SequenceMaskLoss)
    with pytest.raises(swift_zoo.ConformanceError, match="ignored position"):
        testing.check_masking(LeakySequenceMaskLoss)


def test_checks_accept_instances_classes_and_registered_names():
    assert testing.check_scalar_output(CrossEntropyLoss())
    assert testing.check_scalar_output(CrossEntropyLoss)
    assert testing.check_scalar_output("cross_entropy")
    with pytest.raises(TypeError, match="expected a swift_zoo.BaseLoss instance or subclass"):
        testing.check_scalar_output(int)
