"""The compiled (``fused=True``) variants under FSDP2: the conformance suite's check on two gloo ranks.

Lion and schedule-free AdamW run their compiled per-tensor kernels on each rank's rows (bitwise one process's:
the check asserts it for element-wise optimizers); APOLLO runs its compiled low-rank moments on the owner and
its C write on each rank's rows. Adafactor and Adam-mini run their eager rule under FSDP2 whatever ``fused``
says (their statistics cross the shards): not repeated here. Each check spawns two ranks that compile the
kernels, so this lives with the distributed tests, not the unit tests.
"""

from __future__ import annotations

import pytest

from swift_zoo import testing

SUBJECTS = {
    "lion": ("swift_optim_zoo.lion", "Lion", {"lr": 1e-2, "fused": True}),
    "schedule_free_adamw": ("swift_optim_zoo.schedule_free", "ScheduleFreeAdamW", {"lr": 1e-2, "fused": True}),
    "apollo_adamw": ("swift_optim_zoo.apollo", "ApolloAdamW", {"lr": 1e-2, "rank": 4, "update_proj_gap": 3,
                                                               "fused": True}),
}


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_fused_variant_under_fsdp2_equals_one_process(name, require_gloo):
    module, attr, kwargs = SUBJECTS[name]
    cls = getattr(pytest.importorskip(module, reason="the optimizer zoo is not installed"), attr)
    note = testing.check_fsdp2_equivalence((cls, kwargs))
    assert ("bitwise" in note) == bool(cls.elementwise), note
