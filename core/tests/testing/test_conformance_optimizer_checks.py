"""Every optimizer check fails on an optimizer broken in its way, and passes on correct optimizers."""

from __future__ import annotations

import pytest
from conformance_broken_optimizers import (
    AdoptsAnyStateAdam,
    AscentAdam,
    CachedLrAdam,
    ExampleKwargsAdam,
    Float32ParamsAdam,
    FrozenParamListAdam,
    IgnoresClosureAdam,
    LowRankAdam,
    LrFreeDecayAdam,
    ModeAdam,
    NanPoisonAdam,
    PlainGroupsAdam,
    PythonObjectStateAdam,
    SilentSkipAdam,
    StateForAllAdam,
    TinyAdam,
    UndeclaredAdam,
    UnderDeclaredAdam,
    UnsavedStepAdam,
)

import swift_zoo
from swift_optim_zoo.adamw import AdamW
from swift_zoo import testing

BROKEN = [
    (AscentAdam, "check_reduces_quadratic", ["expected a convex quadratic to fall to at most 0.5x", "with the optimum 0.004 away", "with the optimum 0.04 away"]),
    (AscentAdam, "check_trains_tiny_lm", ["expected the tiny LM's loss to fall from", "in 30 steps"]),
    (StateForAllAdam, "check_no_grad_params_untouched", ["expected no state for 'unused.weight', whose grad is None",
                                                         "exp_avg"]),
    (LrFreeDecayAdam, "check_zero_lr_no_movement", ["expected no parameter to move with lr=0, found 8 moved"]),
    (CachedLrAdam, "check_per_group_lr", ["(hidden_matrix, lr set to 0) not to move", "ignores the group's lr"]),
    (FrozenParamListAdam, "check_add_param_group", ["expected the params of the added group to move"]),
    (IgnoresClosureAdam, "check_closure", ["expected step(closure) to call the closure"]),
    (CachedLrAdam, "check_scheduler_takes_effect", ["expected no movement after the scheduler set lr to 0",
                                                    "cached lr"]),
    (Float32ParamsAdam, "check_bf16_params", ["to stay torch.bfloat16, found torch.float32"]),
    (PythonObjectStateAdam, "check_state_dict_resume",
     ["torch.load(weights_only=True)", "first offending value: state_dict()['state'][0]['projector']",
      "_Projector"]),
    (UnsavedStepAdam, "check_state_dict_resume", ["to match the uninterrupted run", "a step counter"]),
    (UnderDeclaredAdam, "check_state_bytes", ["measured > ", "declared", "proj.weight (64, 48)"]),
    (UndeclaredAdam, "check_state_bytes", ["UndeclaredAdam.state_bytes_for(param, group)", "not declared"]),
    (NanPoisonAdam, "check_nonfinite_gradient", ["to change no parameter and no state", "found "]),
    (SilentSkipAdam, "check_nonfinite_gradient", ["found it skipped silently"]),
    (AdoptsAnyStateAdam, "check_foreign_state_refused", ["torch.optim.SGD state dict to fail at load"]),
    (PlainGroupsAdam, "check_add_param_group", ["to accept a new group (the model-built groups carry param_names)"]),
]


@pytest.mark.parametrize(("cls", "check_name", "fragments"), BROKEN,
                         ids=[f"{c.__name__}-{n}" for c, n, _ in BROKEN])
def test_each_check_fails_on_an_optimizer_broken_its_way(cls, check_name, fragments):
    check = getattr(testing, check_name)
    with pytest.raises(swift_zoo.ConformanceError) as caught:
        check(cls)
    error = caught.value
    assert error.check == check_name
    assert error.subject == cls.__name__
    assert str(error).startswith(f"{check_name} failed for {cls.__name__}: expected")
    for fragment in fragments:
        assert fragment in str(error), str(error)


@pytest.mark.parametrize("check_name", sorted({name for _, name, _ in BROKEN}))
def test_the_unbroken_reference_passes_the_same_check(check_name):
    assert getattr(testing, check_name)(TinyAdam)


@pytest.mark.parametrize("optimizer", [AdamW, TinyAdam, ModeAdam], ids=["adamw", "tiny_adam", "mode_adam"])
def test_every_check_passes_on_correct_optimizers(optimizer):
    report = testing.check_optimizer(optimizer, on_fail="collect")
    assert report.ok, report.format_table()
    assert {r.status for r in report} == {"passed"}, report.format_table()
    assert set(report.names) == set(testing.optimizer_checks())


def test_registered_adamw_by_name_uses_role_groups():
    note = testing.check_trains_tiny_lm("adamw")
    for role in ("embedding", "hidden_matrix", "norm", "output_head"):
        assert role in note


def test_example_kwargs_are_used_and_explicit_kwargs_win():
    assert testing.check_reduces_quadratic(ExampleKwargsAdam)
    with pytest.raises(swift_zoo.ConformanceError, match=r"kwargs \{'lr': 1e-07\}"):
        testing.check_reduces_quadratic(ExampleKwargsAdam, {"lr": 1e-7})
    with pytest.raises(swift_zoo.ConformanceError, match="expected a convex quadratic"):
        testing.check_reduces_quadratic((ExampleKwargsAdam, {"lr": 1e-7}))


def test_state_bytes_uses_a_rank_below_the_matrix_size():
    note = testing.check_state_bytes(LowRankAdam)
    assert "(rank 8)" in note


def test_hooks_are_called_before_stepping():
    # ModeAdam raises in step() unless train() was called; every check above passed on it
    with pytest.raises(swift_zoo.OptimizerModeError):
        opt = ModeAdam([swift_zoo.testing.TinyLM().lm_head.weight])
        opt.step()


def test_optimizer_instances_are_rejected_with_a_hint():
    opt = TinyAdam([swift_zoo.testing.TinyLM().lm_head.weight])
    with pytest.raises(TypeError, match="pass the optimizer class, not an instance"):
        testing.check_closure(opt)
