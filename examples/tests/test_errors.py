"""The examples' command lines fail the way the ``swift-zoo`` CLI does: one line naming the mistake, exit 2,
``--debug`` for the traceback -- and before anything trains (issue 13, a new user's first hour). Fast: no
``examples`` marker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent
SFT = EXAMPLES / "configs" / "sft.yaml"
DPO = EXAMPLES / "configs" / "dpo.yaml"


def train_py(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(EXAMPLES / "train.py"), *argv, "--runs", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.mark.parametrize(
    ("config", "override", "message"),
    [
        (SFT, "training_args.max_step=10",
         "train.py: error: training_args: unknown key 'max_step'; did you mean 'max_steps'?"),
        (SFT, "training_args.per_device_train_batch_sze=8",
         "train.py: error: training_args: unknown key 'per_device_train_batch_sze'; did you mean "
         "'per_device_train_batch_size'?"),
        (SFT, "training_args.warmup_steps=5", "train.py: error: training_args.warmup_steps is not read by this example"),
        (DPO, "training_args.loss_type=dpoo", "train.py: error: unknown loss 'dpoo'; did you mean 'dpo'"),
        (SFT, "training_args.max_steps", "train.py: error: --set expects KEY=VALUE"),
    ],
)
def test_a_config_mistake_is_one_line_before_anything_trains(tmp_path, config, override, message):
    done = train_py(tmp_path, str(config), "--set", override)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr
    assert lines[0].endswith("(--debug shows the traceback)")
    assert not (tmp_path / "sft" / "model.pt").exists()  # dpo's prerequisite did not train first


def test_a_config_that_is_not_a_file_is_one_line(tmp_path):
    done = train_py(tmp_path, str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"train.py: error: config file {str(tmp_path)!r} is a directory, not a YAML file")


def test_debug_shows_the_traceback(tmp_path):
    done = train_py(tmp_path, str(SFT), "--set", "training_args.max_step=10", "--debug")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "ConfigError" in done.stderr


def test_hf_trainer_without_transformers_names_the_extra():
    code = ("import runpy, sys; sys.modules['transformers'] = None; sys.argv = ['hf_trainer.py']; "
            f"sys.exit(runpy.run_path({str(EXAMPLES / 'hf_trainer.py')!r}, run_name='__main__'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("hf_trainer.py: error: swift_zoo.integrations.hf needs transformers and accelerate "
                                  "('transformers' is not installed): pip install -c constraints.txt "
                                  '"swift-zoo-core[hf]"'), done.stderr
    assert "Traceback" not in done.stderr
