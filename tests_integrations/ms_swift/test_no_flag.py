"""swift-zoo-ms-swift: the same numbers with no flag as with ``--external_plugins``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _routes(tmp_path: Path, tiny_run, *, flag: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SWIFT_ZOO_MS_SWIFT_DISABLE"}
    if flag:
        env["SWIFT_ZOO_MS_SWIFT_DISABLE"] = "1"  # the flag route alone, even with the distribution installed
    command = [sys.executable, str(HERE / "route_runs.py"), str(tiny_run.model_dir),
               str(tiny_run.data["sft"].parent), str(tmp_path / ("flag" if flag else "auto"))]
    done = subprocess.run(command + (["--flag"] if flag else []), capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_no_flag_equals_flag(tmp_path, tiny_run):
    try:
        metadata.distribution("swift-zoo-ms-swift")
    except metadata.PackageNotFoundError:
        pytest.skip("swift-zoo-ms-swift is not installed")
    flagged, _ = _routes(tmp_path, tiny_run, flag=True)
    automatic, log = _routes(tmp_path, tiny_run, flag=False)
    assert "swift zoo (swift-zoo-ms-swift" in log and "external_plugins" not in log.split("swift zoo (")[1][:40]
    assert automatic == flagged  # bit for bit: the same code runs, only the way in differs
