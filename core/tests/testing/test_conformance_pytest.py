"""parametrize_with_checks and the opt-in pytest plugin, run in a child pytest on a tiny file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conformance_broken_optimizers import TinyAdam

from swift_loss_zoo.lm.cross_entropy import CrossEntropyLoss
from swift_zoo.testing import parametrize_with_checks

HERE = Path(__file__).parent

TEST_FILE = textwrap.dedent(
    '''
    import os

    import pytest
    from conformance_broken_losses import VectorLoss
    from swift_loss_zoo.lm.cross_entropy import CrossEntropyLoss

    from swift_zoo.testing import parametrize_with_checks


    @parametrize_with_checks(
        [CrossEntropyLoss, VectorLoss],
        expected_failures={"check_scalar_output": "returns a vector"},
        checks="check_scalar_output,check_deterministic,check_cuda",
    )
    def test_losses(subject, check):
        check(subject)


    @pytest.mark.swift_zoo_conformance
    def test_fixtures(swift_zoo_strict, swift_zoo_registry, swift_zoo_generator, swift_zoo_check_loss):
        assert swift_zoo_strict is True
        assert os.environ["SWIFT_ZOO_STRICT_PLUGINS"] == "1"
        assert any(e.name == "cross_entropy" for e in swift_zoo_registry.entries("loss"))
        assert swift_zoo_generator.initial_seed() == 0
        assert swift_zoo_check_loss(CrossEntropyLoss, checks="check_scalar_output").ok


    def test_not_marked():
        pass
    '''
)


def test_parametrize_ids_marks_and_exemptions():
    decorator = parametrize_with_checks([CrossEntropyLoss(), TinyAdam], checks="check_closure,check_scalar_output",
                                        expected_failures={"check_closure": "no closures"})
    mark = decorator.mark
    assert mark.name == "parametrize" and mark.args[0] == ("subject", "check")
    params = mark.args[1]
    assert [p.id for p in params] == ["CrossEntropyLoss-check_scalar_output", "TinyAdam-check_closure"]
    xfail = params[1].marks[0]
    assert xfail.name == "xfail" and xfail.kwargs == {"strict": True, "reason": "no closures"}
    assert not params[0].marks
    assert repr(params[1].values[1]) == "check_closure"


def test_bound_checks_run_and_skip_like_pytest(monkeypatch):
    import torch

    params = parametrize_with_checks([TinyAdam, CrossEntropyLoss], checks="check_closure,check_cuda").mark.args[1]
    by_id = {p.id: p.values for p in params}
    subject, check = by_id["TinyAdam-check_closure"]
    assert "closure called" in check(subject)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    subject, check = by_id["CrossEntropyLoss-check_cuda"]
    with pytest.raises(pytest.skip.Exception, match="torch.cuda is not available"):
        check(subject)


def test_parametrize_takes_optimizer_kwargs_pairs_and_class_exemptions():
    from conformance_broken_losses import ExemptVectorLoss

    params = parametrize_with_checks([(TinyAdam, {"lr": 0.05}), ExemptVectorLoss],
                                     checks=["check_closure", "check_scalar_output"]).mark.args[1]
    assert [p.id for p in params] == ["TinyAdam-check_closure", "ExemptVectorLoss-check_scalar_output"]
    assert params[0].values[0].kwargs == {"lr": 0.05}
    assert params[1].marks[0].kwargs["reason"] == "returns per-token losses for a custom trainer"


def test_parametrize_rejects_unknown_subjects_and_checks():
    with pytest.raises(ValueError, match="unknown check"):
        parametrize_with_checks([TinyAdam], checks=["check_nope"])
    with pytest.raises(TypeError, match="parametrize_with_checks takes loss or advantage-estimator instances or classes"):
        parametrize_with_checks([object()])


def test_child_pytest_run(tmp_path):
    (tmp_path / "test_conformance_child.py").write_text(TEST_FILE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    env.pop("SWIFT_ZOO_STRICT_PLUGINS", None)
    command = [
        sys.executable, "-m", "pytest", str(tmp_path), "-v", "-rA", "-p", "no:cacheprovider",
        "-p", "swift_zoo.testing.pytest_plugin", "--swift-zoo-strict", "-m", "swift_zoo_conformance",
        "--strict-markers",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert "test_losses[CrossEntropyLoss-check_deterministic] PASSED" in out, out
    assert "test_losses[VectorLoss-check_scalar_output] XFAIL" in out, out
    assert "test_losses[VectorLoss-check_deterministic] FAILED" in out, out
    assert "ConformanceError: check_deterministic failed for vector_loss: expected" in out, out
    assert "test_losses[CrossEntropyLoss-check_cuda] SKIPPED" in out, out
    assert "torch.cuda is not available" in out, out
    # the exemption is stale for cross_entropy: strict xfail flags it
    assert "test_losses[CrossEntropyLoss-check_scalar_output] FAILED" in out, out
    assert "XPASS(strict)" in out and "returns a vector" in out, out
    assert "test_fixtures PASSED" in out, out
    assert "1 deselected" in out, out  # test_not_marked: the marker selects only suite cases
    assert done.returncode == 1, out
