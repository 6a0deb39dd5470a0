"""``swift-zoo new-plugin``: the scaffold fails the conformance suite until its formula is written,
then passes, through the generated pytest file as an author runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from swift_zoo import ConfigError
from swift_zoo._cli.main import main

FORMULA = "return UnitLosses(self.scale * (upcast(inputs['scores']) - upcast(inputs['targets'])) ** 2)"


def run_generated_tests(root):
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([sys.executable, "-m", "pytest", str(root / "tests"), "-q", "-rA", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, env=env, cwd=root, timeout=300)


def test_scaffold_fails_until_filled_in_then_passes(tmp_path, capsys):
    root = tmp_path / "my-loss-plugin"
    assert main(["new-plugin", str(root), "--name", "my-loss-plugin"]) == 0
    module = root / "src" / "my_loss_plugin" / "my_loss.py"
    assert (root / "pyproject.toml").read_text().count('my_loss_plugin = "my_loss_plugin._plugin"') == 1
    before = run_generated_tests(root)
    assert before.returncode == 1, before.stdout
    assert "per_unit_loss is not written yet" in before.stdout
    source = module.read_text()
    start = source.index("        # TODO: return UnitLosses")
    end = source.index("raise NotImplementedError(message)") + len("raise NotImplementedError(message)")
    filled = source[:start] + "        " + FORMULA + source[end:]
    module.write_text(filled.replace("arXiv:TODO", "arXiv:2401.00001"))  # the author names the paper
    after = run_generated_tests(root)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "passed" in after.stdout
    # the optimizer stub (SGD with momentum on ZooOptimizer) passes the optimizer suite as generated
    optimizer_cases = [line for line in after.stdout.splitlines() if "[MyLossSGD-check_" in line]
    assert len(optimizer_cases) >= 10 and all(line.startswith("PASSED") for line in optimizer_cases), after.stdout


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("class", "its package name 'class' is a Python keyword"),
        ("swift-zoo-core", "a distribution of that name is already installed (swift-zoo-core "),
        ("loss-zoo", "the plugin name 'loss_zoo' is already used by swift-loss-zoo "),
        ("json", "a module named 'json' is already importable"),
    ],
)
def test_scaffold_refuses_names_that_break_or_collide(tmp_path, name, problem):
    from swift_zoo._cli.scaffold import scaffold_plugin

    with pytest.raises(ConfigError, match=re.escape(f"plugin name {name!r}: {problem}")):
        scaffold_plugin(tmp_path / "new", name)
    assert not (tmp_path / "new").exists()


def test_the_next_line_installs_the_test_extra(tmp_path, capsys):
    assert main(["new-plugin", str(tmp_path / "p"), "--name", "fresh-plugin"]) == 0
    out = capsys.readouterr().out
    assert f'next: pip install -e "{tmp_path / "p"}[test]" && pytest {tmp_path / "p"}/tests' in out
    assert 'test = ["pytest>=7"]' in (tmp_path / "p" / "pyproject.toml").read_text()


def test_scaffold_refuses_a_non_empty_folder_and_a_bad_name(tmp_path):
    from swift_zoo._cli.scaffold import scaffold_plugin

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        scaffold_plugin(tmp_path / "taken", "ok-name")
    with pytest.raises(ConfigError, match="plugin name must be a distribution name"):
        scaffold_plugin(tmp_path / "new", "bad name!")
