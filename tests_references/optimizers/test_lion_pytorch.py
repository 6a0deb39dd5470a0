"""lion against lion-pytorch 0.2.5, 20 steps in lockstep (eager and fused)."""

from __future__ import annotations

import pytest

lion_pytorch = pytest.importorskip("lion_pytorch", reason="lion-pytorch is not installed (tests_references/requirements.txt)")

from _lockstep import lockstep  # noqa: E402

from swift_optim_zoo.lion import Lion  # noqa: E402


@pytest.mark.parametrize("fused", [False, True])
def test_matches_lion_pytorch(fused: bool) -> None:
    drift = lockstep(lambda p: Lion(p, lr=1e-3, weight_decay=0.1, fused=fused),
                     lambda p: lion_pytorch.Lion(p, lr=1e-3, weight_decay=0.1))
    assert drift < 1e-6
