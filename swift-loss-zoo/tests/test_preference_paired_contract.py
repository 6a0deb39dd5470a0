"""Registration, hyperparameter validation, declared inputs and batch semantics of the paired losses."""

from __future__ import annotations

import math

import pytest
import torch

import swift_zoo
from swift_loss_zoo.preference import (
    AotLoss,
    AotUnpairedLoss,
    ApoDownLoss,
    ApoZeroLoss,
    BcoPairLoss,
    DiscoPopLoss,
    DpoLoss,
    DpoNormLoss,
    ExoPairLoss,
    HingeLoss,
    IpoLoss,
    NcaPairLoss,
    RobustDpoLoss,
    RpoLoss,
    SppoHardLoss,
)
from swift_zoo import ConfigError, LossInputError

ALL = [AotLoss, AotUnpairedLoss, ApoDownLoss, ApoZeroLoss, BcoPairLoss, DiscoPopLoss, DpoLoss, DpoNormLoss,
       ExoPairLoss, HingeLoss, IpoLoss, NcaPairLoss, RobustDpoLoss, RpoLoss, SppoHardLoss]

NAMES = {
    "dpo": (DpoLoss, ("cdpo",)), "dpo_norm": (DpoNormLoss, ("sigmoid_norm",)),
    "robust_dpo": (RobustDpoLoss, ("rdpo",)), "rpo": (RpoLoss, ()), "ipo": (IpoLoss, ()),
    "hinge": (HingeLoss, ("slic",)), "exo_pair": (ExoPairLoss, ("exo",)), "nca_pair": (NcaPairLoss, ("nca",)),
    "bco_pair": (BcoPairLoss, ()), "sppo_hard": (SppoHardLoss, ()), "aot": (AotLoss, ()),
    "aot_unpaired": (AotUnpairedLoss, ("aot_pair",)), "apo_zero": (ApoZeroLoss, ()),
    "apo_down": (ApoDownLoss, ()), "discopop": (DiscoPopLoss, ("lrml",)),
}


def example(cls, batch_size=6, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return cls.example_inputs(batch_size=batch_size, generator=generator, dtype=dtype).model_outputs


# ------------------------------------------------------------------------------------ registration
@pytest.mark.parametrize("name", sorted(NAMES))
def test_build_loss_by_name_and_alias(name):
    cls, aliases = NAMES[name]
    for spelling in (name, f"loss_zoo:{name}", *aliases):
        loss = swift_zoo.build_loss(spelling)
        assert type(loss) is cls
    assert cls.name == name and set(cls.aliases) == set(aliases)
    assert cls.reference.startswith("arXiv:")
    assert cls.reduction_unit == "pair"
    loss = swift_zoo.build_loss(name, beta=0.3)
    assert loss.beta == 0.3 and loss.hyperparameters()["beta"] == 0.3
    value = loss(example(cls))
    assert value.dim() == 0 and torch.isfinite(value)


def test_catalogue_matches_the_classes():
    from swift_loss_zoo._catalogue.preference import SPECS
    from swift_loss_zoo.preference import SftLoss

    assert {spec.name for spec in SPECS} == set(NAMES) | {"sft"}  # sft: the MPO term, tested on its own
    for spec in SPECS:
        module, attr = spec.target.split(":")
        cls = getattr(__import__(module, fromlist=[attr]), attr)
        assert cls is NAMES.get(spec.name, (SftLoss,))[0]
        assert spec.reference == cls.reference and set(spec.aliases) == set(cls.aliases)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_docstring_has_formula_paper_defaults_and_yaml(cls):
    doc = cls.__doc__
    for needle in (".. math::", cls.reference, "Defaults:", "Inputs:", "training_args:", f"loss_type: {cls.name}"):
        assert needle in doc, needle


def test_beta_defaults_to_trl_value():
    assert all(cls().beta == 0.1 for cls in ALL)
    assert ExoPairLoss().label_smoothing == 1e-3
    assert DiscoPopLoss().tau == 0.05
    assert RpoLoss().alpha == 1.0
    assert BcoPairLoss().delta == 0.0


# ------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
@pytest.mark.parametrize("beta", [0.0, -0.1, math.nan, math.inf])
def test_beta_must_be_positive_and_finite(cls, beta):
    with pytest.raises(ConfigError) as info:
        cls(beta=beta)
    error = info.value
    assert error.key == "beta"
    assert error.expected == ("> 0" if math.isfinite(beta) else "a finite number > 0")
    assert error.found is beta or error.found == beta
    assert cls.name in str(error) and "beta" in str(error) and "> 0" in str(error) and repr(beta) in str(error)


@pytest.mark.parametrize(("cls", "key", "value", "expected"), [
    (DpoLoss, "label_smoothing", 0.6, "in [0.0, 0.5]"),
    (DpoLoss, "label_smoothing", -0.1, "in [0.0, 0.5]"),
    (RobustDpoLoss, "label_smoothing", 0.5, "in [0.0, 0.5)"),
    (ExoPairLoss, "label_smoothing", 0.0, "in (0.0, 1.0)"),
    (ExoPairLoss, "label_smoothing", 1.0, "in (0.0, 1.0)"),
    (AotLoss, "label_smoothing", 0.7, "in [0.0, 0.5]"),
    (AotUnpairedLoss, "label_smoothing", math.nan, "a finite number in [0.0, 0.5]"),
    (DiscoPopLoss, "tau", 0.0, "in (0.0, 1.0)"),
    (DiscoPopLoss, "tau", 1.5, "in (0.0, 1.0)"),
    (RpoLoss, "alpha", -1.0, ">= 0"),
])
def test_hyperparameter_ranges(cls, key, value, expected):
    with pytest.raises(ConfigError) as info:
        cls(**{key: value})
    error = info.value
    assert error.key == key and error.expected == expected
    assert error.found is value or error.found == value
    message = str(error)
    assert cls.name in message and key in message and expected.replace("a number ", "") in message
    assert repr(value) in message


def test_bco_delta_must_be_finite():
    with pytest.raises(ConfigError) as info:
        BcoPairLoss(delta=math.inf)
    assert info.value.key == "delta" and info.value.expected == "a finite number" and info.value.found == math.inf
    assert "bco_pair" in str(info.value) and "finite" in str(info.value) and "inf" in str(info.value)


def test_build_loss_rejects_bad_values_and_unknown_kwargs():
    with pytest.raises(ConfigError, match="beta"):
        swift_zoo.build_loss("dpo", beta=-1.0)
    with pytest.raises(ConfigError, match="label_smoothing"):
        swift_zoo.build_loss("dpo", label_smootting=0.1)
    assert swift_zoo.build_loss("dpo", beta="0.2").beta == 0.2  # YAML string coerced by annotation


# ------------------------------------------------------------------------------------------ inputs
def test_length_normalised_losses_require_lengths():
    # DpoLoss declares the lengths as optional (WPO's), so its example has them: leave them out
    outputs = {key: value for key, value in example(DpoLoss).items() if not key.endswith("_lengths")}
    for cls, key in ((IpoLoss, "chosen_lengths"), (DpoNormLoss, "chosen_lengths"), (RpoLoss, "chosen_lengths")):
        with pytest.raises(LossInputError) as info:
            cls()(outputs)
        assert cls.name in str(info.value) and key in str(info.value)
    # RPO's NLL reads only the chosen length; rejected_lengths is declared only for the WPO option
    assert {spec.key: spec for spec in RpoLoss.inputs}["rejected_lengths"].optional


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_declared_inputs_and_example(cls):
    declared = {spec.key: spec for spec in cls.inputs}
    outputs = example(cls, batch_size=3)
    assert set(outputs) == set(declared)
    differentiable = {k for k, spec in declared.items() if spec.differentiable}
    assert differentiable == {"policy_chosen_logps", "policy_rejected_logps"}
    for key in differentiable:
        outputs[key] = outputs[key].clone().requires_grad_(True)
    cls()(outputs).backward()
    for key in differentiable:
        assert torch.isfinite(outputs[key].grad).all() and outputs[key].grad.abs().sum() > 0
    assert int(cls().count_units(outputs)) == 3


def test_reference_logps_get_no_gradient_requirement_and_inputs_not_mutated():
    outputs = example(DpoLoss)
    before = {k: v.clone() for k, v in outputs.items()}
    DpoLoss()(outputs)
    for key, value in outputs.items():
        assert torch.equal(value, before[key])


# --------------------------------------------------------------------------------- batch semantics
@pytest.mark.parametrize("cls", [DpoLoss, IpoLoss, RpoLoss, DiscoPopLoss, BcoPairLoss])
def test_micro_batches_with_global_count_equal_the_full_batch(cls):
    outputs = example(cls, batch_size=7, seed=3)

    def run(parts):
        leaves = {k: v.clone().requires_grad_(True) for k, v in outputs.items()
                  if k in ("policy_chosen_logps", "policy_rejected_logps")}
        full = {**outputs, **leaves}
        count = 7 if len(parts) > 1 else None  # the whole batch: local count; micro-batches: the global one
        total = 0.0
        for part in parts:
            chunk = {k: v[part] for k, v in full.items()}
            total = total + cls()(chunk, num_items_in_batch=count)
        total.backward()
        return total.detach(), {k: v.grad for k, v in leaves.items()}

    whole, whole_grads = run([slice(0, 7)])
    split, split_grads = run([slice(0, 2), slice(2, 3), slice(3, 7)])
    torch.testing.assert_close(split, whole, rtol=1e-12, atol=1e-12)
    for key in whole_grads:
        torch.testing.assert_close(split_grads[key], whole_grads[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [AotLoss, AotUnpairedLoss])
def test_aot_is_permutation_invariant_but_batch_dependent(cls):
    assert cls.order_dependent is None and "micro-batch" in cls.batch_dependent
    outputs = example(cls, batch_size=8, seed=4)
    loss = cls(beta=0.3)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss({k: v[order] for k, v in outputs.items()}), loss(outputs))
    # the declaration is true: splitting changes the value (quantiles matched within each half only)
    halves = sum(loss({k: v[part] for k, v in outputs.items()}, num_items_in_batch=8)
                 for part in (slice(0, 4), slice(4, 8)))
    assert not torch.allclose(halves, loss(outputs))


@pytest.mark.parametrize("cls", [c for c in ALL if c not in (AotLoss, AotUnpairedLoss)], ids=lambda c: c.name)
def test_pairwise_losses_are_independent_of_the_batch(cls):
    assert cls.order_dependent is None and cls.batch_dependent is None
    outputs = example(cls, batch_size=5, seed=7)
    order = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(cls()({k: v[order] for k, v in outputs.items()}), cls()(outputs))
