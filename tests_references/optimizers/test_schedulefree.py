"""schedule_free_adamw against schedulefree 1.4.1's ``AdamWScheduleFree``: y in train mode, x in eval mode."""

from __future__ import annotations

import pytest

schedulefree = pytest.importorskip("schedulefree", reason="schedulefree is not installed (tests_references/requirements.txt)")

from _lockstep import lockstep  # noqa: E402

from swift_optim_zoo.schedule_free import ScheduleFreeAdamW  # noqa: E402

KWARGS = {"lr": 1e-2, "betas": (0.9, 0.99), "weight_decay": 0.05, "warmup_steps": 5}


def _theirs(params):
    opt = schedulefree.AdamWScheduleFree(params, **KWARGS)
    opt.train()  # the package starts in eval mode
    return opt


@pytest.mark.parametrize("fused", [False, True])
def test_train_and_eval_points_match_schedulefree(fused: bool) -> None:
    made = {}

    def ours(params):
        made["ours"] = ScheduleFreeAdamW(params, fused=fused, **KWARGS)
        return made["ours"]

    def theirs(params):
        made["theirs"] = _theirs(params)
        made["params"] = params
        return made["theirs"]

    assert lockstep(ours, theirs) < 1e-5
    made["ours"].eval()
    made["theirs"].eval()
    ours_x = [p.detach().clone() for g in made["ours"].param_groups for p in g["params"]]
    theirs_x = [p.detach().clone() for p in made["params"]]
    assert max(float((a - b).abs().max()) for a, b in zip(ours_x, theirs_x)) < 1e-5


def test_the_old_form_is_what_schedulefree_1_4_1_does_not_do() -> None:
    drift = lockstep(lambda p: ScheduleFreeAdamW(p, bias_correction="step_size", **KWARGS), _theirs)
    assert drift > 1e-4
