"""Numbers checked before arithmetic (issue 13): an exact ``num_items_in_batch`` (item 7), masked positions
that never reach the gradient (item 8), and values inside their declared domain (item 9)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from swift_zoo import BaseLoss, LossExample, LossInputError, TensorInput, UnitLosses
from swift_zoo.ops import sequence_logps, token_logps


class SampleSquare(BaseLoss):
    """Squared value per sample: x^2, summed over samples and divided by N. arXiv:0000.00000"""

    name = "sample_square"
    reference = "arXiv:0000.00000"
    reduction_unit = "sample"
    inputs = (TensorInput("x", ("B",), differentiable=True),)

    def per_unit_loss(self, inputs):
        return UnitLosses(inputs["x"] ** 2)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu"):
        return LossExample({"x": torch.randn(batch_size, generator=generator).to(device, dtype)})


def square(count):
    return SampleSquare()({"x": torch.ones(4)}, num_items_in_batch=count)


# --------------------------------------------------------------------------- item 7: num_items_in_batch
@pytest.mark.parametrize(
    ("count", "message"),
    [
        (math.nan, "num_items_in_batch must be a finite count of units, got nan"),
        (math.inf, "num_items_in_batch must be a finite count of units, got inf"),
        (2.5, "num_items_in_batch must be a whole number of units, got 2.5"),
        (torch.tensor(float("nan")), "num_items_in_batch must be a finite count of units, got nan"),
        (torch.tensor(float("inf"), dtype=torch.float64), "must be a finite count of units, got inf"),
        (torch.tensor(3.5), "num_items_in_batch must be a whole number of units, got 3.5"),
        (torch.tensor(1000001.0, dtype=torch.bfloat16), "is a bfloat16 tensor, too coarse for a count "
                                                         r"\(bfloat16 rounds 1000001 to 999424"),
        (torch.tensor(8.0, dtype=torch.float16), "is a float16 tensor, too coarse for a count"),
        (torch.tensor(2.0**24 + 2), r"num_items_in_batch = 16777218 as a float32 tensor may have been rounded \(above "
                                    r"2\*\*24"),
        (2.0**53 + 2, r"above 2\*\*53"),
        (torch.tensor(True), "got a torch.bool tensor"),
    ],
)
def test_a_count_that_is_not_an_exact_whole_number_is_refused(count, message):
    with pytest.raises(LossInputError, match=message):
        square(count)


@pytest.mark.parametrize("count", [8, 8.0, np.int64(8), np.float64(8.0), torch.tensor(8), torch.tensor(8.0),
                                   torch.tensor(8.0, dtype=torch.float64), torch.tensor([8], dtype=torch.int32)])
def test_exact_counts_of_every_accepted_type_give_the_same_loss(count):
    assert square(count).item() == pytest.approx(0.5)


def test_the_bf16_rounding_the_check_prevents_is_real():
    assert torch.tensor(1000001.0, dtype=torch.bfloat16).item() == 999424.0


# ------------------------------------------------------------------ item 8: masked positions and the gradient
class MaskedLogSoftmax(BaseLoss):
    """Negative log-softmax of class 0 per kept row: -log softmax(z_t)_0. arXiv:0000.00000"""

    name = "masked_log_softmax"
    reference = "arXiv:0000.00000"
    reduction_unit = "token"
    inputs = (
        TensorInput("z", ("B", "T", "V"), differentiable=True, masked_by="mask"),
        TensorInput("mask", ("B", "T"), dtype="mask", role="mask"),
    )

    def per_unit_loss(self, inputs):  # every row, kept or not: the shape of F.cross_entropy(reduction="none")
        return UnitLosses(-torch.log_softmax(inputs["z"], dim=-1)[..., 0], inputs["mask"].bool())


@pytest.mark.parametrize("filled", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_at_ignored_positions_leave_their_gradient_exactly_zero(filled):
    z = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    clean = z.clone().requires_grad_(True)
    MaskedLogSoftmax()({"z": clean, "mask": mask}).backward()
    dirty = z.clone()
    dirty[mask == 0] = filled
    dirty.requires_grad_(True)
    value = MaskedLogSoftmax()({"z": dirty, "mask": mask})
    value.backward()
    assert torch.isfinite(value)
    assert torch.equal(dirty.grad[mask == 0], torch.zeros(2, 5))
    torch.testing.assert_close(dirty.grad[mask == 1], clean.grad[mask == 1], rtol=0, atol=0)


def test_zero_gradient_where_is_the_identity_forward():
    from swift_zoo.ops import zero_gradient_where

    x = torch.randn(2, 3, requires_grad=True)
    ignored = torch.tensor([[True], [False]])
    y = zero_gradient_where(x, ignored)
    assert torch.equal(y, x)
    (y * float("nan")).sum().backward()
    assert torch.equal(x.grad[0], torch.zeros(3)) and torch.isnan(x.grad[1]).all()


# -------------------------------------------------------------------------- item 9: declared value domains
class Classifier(BaseLoss):
    """Cross-entropy of class labels plus a weighted binary flag: -log p_y * (1 + f). arXiv:0000.00000"""

    name = "classifier"
    reference = "arXiv:0000.00000"
    reduction_unit = "sample"
    inputs = (
        TensorInput("logits", ("B", "V"), differentiable=True),
        TensorInput("labels", ("B",), dtype="int", role="labels", domain="index:V"),
        TensorInput("flag", ("B",), dtype="mask", optional=True, domain="binary"),
        TensorInput("soft", ("B",), optional=True, domain="unit_interval"),
        TensorInput("length", ("B",), dtype="int", optional=True, domain="non_negative"),
    )
    calls = 0

    def per_unit_loss(self, inputs):
        type(self).calls += 1
        keep = inputs["labels"] != self.ignore_index
        picked = torch.log_softmax(inputs["logits"], -1).gather(-1, inputs["labels"].clamp(min=0)[:, None])[:, 0]
        return UnitLosses(-picked, keep)


@pytest.mark.parametrize(
    ("extra", "labels", "message"),
    [
        ({}, [0, 4], r"classifier: labels must hold class indices in \[0, V=4\) or ignore_index -100; found 1 "
                     r"value\(s\) outside, e.g. 4 at position \(1,\)"),
        ({}, [-5, 1], r"found 1 value\(s\) outside, e.g. -5 at position \(0,\)"),
        ({"flag": torch.tensor([-100.0, 1.0])}, [0, 1], r"model_outputs\['flag'\] must hold 0 or 1; found 1 value\(s\) "
                                                       r"outside, e.g. -100.0 at position \(0,\)"),
        ({"flag": torch.tensor([1, 7])}, [0, 1], r"model_outputs\['flag'\] must hold 0 or 1; .* e.g. 7"),
        ({"soft": torch.tensor([0.5, float("nan")])}, [0, 1], r"model_outputs\['soft'\] must hold values in \[0, 1\]"),
        ({"length": torch.tensor([3, -1])}, [0, 1], r"model_outputs\['length'\] must hold values >= 0"),
    ],
)
def test_values_outside_the_declared_domain_fail_before_arithmetic(extra, labels, message):
    Classifier.calls = 0
    with pytest.raises(LossInputError, match=message):
        Classifier()({"logits": torch.zeros(2, 4), **extra}, torch.tensor(labels))
    assert Classifier.calls == 0


def test_ignore_index_and_in_domain_values_pass():
    value = Classifier()({"logits": torch.zeros(2, 4), "flag": torch.tensor([True, False]),
                          "soft": torch.tensor([0.0, 1.0]), "length": torch.tensor([0, 3])}, torch.tensor([3, -100]))
    assert value.item() == pytest.approx(math.log(4))


def test_a_domain_is_declared_in_a_known_spelling():
    with pytest.raises(ValueError, match="domain must be one of 'binary', 'unit_interval', 'non_negative' or "
                                         r"'index:<symbol or size>' \(e.g. 'index:V'\), got 'index'"):
        TensorInput("labels", ("B",), domain="index")
    assert TensorInput("y", ("B",), domain="index:10").describe() == "y [B] (float, domain index:10)"


def test_token_ids_outside_the_vocabulary_are_a_clear_error_in_the_shared_ops():
    logits = torch.zeros(1, 3, 5)
    with pytest.raises(ValueError, match=r"token_logps: labels must be token ids in \[0, 5\) or ignore_index -100; "
                                         "found 1 outside, e.g. 5"):
        token_logps(logits, torch.tensor([[0, 5, -100]]))
    with pytest.raises(ValueError, match="e.g. -3"):
        sequence_logps(logits, torch.tensor([[0, -3, 1]]))
