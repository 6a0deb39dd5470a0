"""Every advantage check fails on an estimator broken in its way, and passes on correct estimators."""

from __future__ import annotations

import io
import json

import pytest
from conformance_broken_advantages import (
    BadMetadataAdvantage,
    GradAdvantage,
    GroupMeanAdvantage,
    HalfOverflowAdvantage,
    IdValueAdvantage,
    KwargsAdvantage,
    LeakyMaskAdvantage,
    MissingOutputAdvantage,
    MutatingAdvantage,
    NoEpsAdvantage,
    PositionalGroupAdvantage,
    RandomAdvantage,
    TokenReturnAdvantage,
    UnmaskedOutputAdvantage,
    WrongShapeAdvantage,
)

import swift_zoo
from swift_zoo import testing

BROKEN = [
    (WrongShapeAdvantage, "check_advantage_output", ["expected advantages of shape [8]", "found [8, 1]"]),
    (GradAdvantage, "check_advantage_output", ["carry no gradient", "requires_grad=True", "batch['rewards']"]),
    (RandomAdvantage, "check_advantage_deterministic", ["same advantages", "randomness or state"]),
    (MutatingAdvantage, "check_advantage_inputs_not_mutated", ["expected batch['rewards'] unchanged"]),
    (PositionalGroupAdvantage, "check_advantage_permutation",
     ["expected the advantages to permute with the batch", "group labels relabelled", "order of responses"]),
    (IdValueAdvantage, "check_advantage_permutation", ["values of the group ids"]),
    (NoEpsAdvantage, "check_advantage_degenerate_groups", ["expected finite advantages with every reward 0"]),
    (LeakyMaskAdvantage, "check_advantage_masking",
     ["masked positions of batch['token_rewards'] are set to ±10000", "leak into the advantages"]),
    (UnmaskedOutputAdvantage, "check_advantage_masking", ["expected token-level advantages of 0 at the 8 masked"]),
    (MissingOutputAdvantage, "check_advantage_extra_outputs",
     ["expected the declared extra output 'returns'", "record_outputs(returns=...)"]),
    (HalfOverflowAdvantage, "check_advantage_low_precision", ["expected finite advantages from float16 inputs"]),
    (KwargsAdvantage, "check_advantage_unknown_kwargs_rejected", ["to raise swift_zoo.ConfigError", "never **kwargs"]),
    (KwargsAdvantage, "check_advantage_metadata", ["found **kwargs"]),
    (BadMetadataAdvantage, "check_advantage_metadata",
     ["found 3 problem(s)", "name: expected lower snake case", "found 'Bad-Name'", "docstring: expected a class",
      "reference: expected the paper"]),
]


@pytest.mark.parametrize(("cls", "check_name", "fragments"), BROKEN, ids=[f"{c.__name__}-{n}" for c, n, _ in BROKEN])
def test_each_check_fails_on_an_estimator_broken_its_way(cls, check_name, fragments):
    check = getattr(testing, check_name)
    with pytest.raises(swift_zoo.ConformanceError) as caught:
        check(cls)
    error = caught.value
    assert error.check == check_name and error.subject == cls.name
    assert str(error).startswith(f"{check_name} failed for {cls.name}: expected")
    for fragment in fragments:
        assert fragment in str(error), str(error)


@pytest.mark.parametrize("cls", sorted({c for c, _, _ in BROKEN if c is not BadMetadataAdvantage},
                                       key=lambda c: c.__name__))
def test_the_unbroken_parent_passes_the_same_check(cls):
    parent = TokenReturnAdvantage if issubclass(cls, TokenReturnAdvantage) else GroupMeanAdvantage
    for check_name in (name for broken, name, _ in BROKEN if broken is cls):
        if check_name == "check_advantage_extra_outputs":
            continue  # the parent declares no extra output: skipped, see below
        assert getattr(testing, check_name)(parent) is not None


@pytest.mark.parametrize("estimator", [GroupMeanAdvantage, TokenReturnAdvantage, *swift_zoo.list_advantages()],
                         ids=lambda e: getattr(e, "name", None) or e.__name__)
def test_every_check_passes_on_correct_estimators(estimator):
    subject = estimator.qualified_name if hasattr(estimator, "qualified_name") else estimator
    report = testing.check_advantage(subject, on_fail="collect")
    assert report.ok, report.format_table()
    assert set(report.names) == set(testing.advantage_checks())
    assert report.kind == "advantage"


def test_skips_say_why():
    report = testing.check_advantage(GroupMeanAdvantage, on_fail="collect")
    skipped = {r.name: r.message for r in report.by_status("skipped")}
    assert skipped == {"check_advantage_masking": "no input has the role 'mask'",
                       "check_advantage_extra_outputs": "no extra_outputs declared"}


def test_exemptions_and_the_pytest_decorator_cover_estimators():
    report = testing.check_advantage(HalfOverflowAdvantage, on_fail="collect", checks=["check_advantage_low_precision"],
                                     expected_failures={"check_advantage_low_precision": "known"})
    assert report.ok and report.by_status("xfail")[0].reason == "known"
    stale = testing.check_advantage(GroupMeanAdvantage, on_fail="collect", checks=["check_advantage_low_precision"],
                                    expected_failures={"check_advantage_low_precision": "stale"})
    assert not stale.ok and stale.by_status("xpass")
    cases = testing._pytest.conformance_cases([GroupMeanAdvantage], checks=["check_advantage_output"])
    assert [case[0] for case in cases] == ["GroupMeanAdvantage-check_advantage_output"]


def test_cli_checks_the_estimators_of_a_distribution():
    out = io.StringIO()
    code = testing.run_check_cli("loss_zoo:gae", as_json=True, out=out)
    data = json.loads(out.getvalue())
    assert code == 0 and data["ok"]
    assert [r["kind"] for r in data["reports"]] == ["advantage"]
    assert {r["name"] for r in data["reports"][0]["results"]} == set(testing.advantage_checks())
