"""What a new user meets in the first hour, from a fresh clone and the README only (issue 13): the README's
code works as written, and the CLI behaves as the README says."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import swift_zoo
from swift_zoo._cli.main import main

README = Path(__file__).resolve().parents[2] / "README.md"


def run(*argv):
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def readme_block(marker: str) -> str:
    """The README's fenced ```python block that contains ``marker``."""
    if not README.is_file():
        pytest.skip(f"needs the repository checkout ({README}); not shipped in the wheel")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"expected one README python block with {marker!r}, found {len(found)}"
    return found[0]


def test_swift_zoo_ops_is_reachable_after_import_swift_zoo_without_importing_torch():
    code = (
        "import sys, swift_zoo; assert 'torch' not in sys.modules, 'import swift_zoo imported torch'; "
        "import torch; logits = torch.zeros(1, 3, 4); labels = torch.tensor([[0, 1, 2]]); "
        "print(swift_zoo.ops.sequence_logps(logits, labels).counts.tolist())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[2]"]


def test_the_readme_loss_example_passes_the_conformance_suite():
    namespace: dict = {}
    try:
        exec(compile(readme_block("class MarginDpo"), str(README), "exec"), namespace)  # the README's own code
        report = swift_zoo.testing.check_loss(namespace["MarginDpo"], on_fail="collect")
        assert report.ok, report.format_table()
        assert swift_zoo.get_loss("margin_dpo") is namespace["MarginDpo"]
    finally:
        swift_zoo.REGISTRY.unregister("loss", "margin_dpo")


def test_the_readme_says_how_check_loss_returns_a_report():
    text = README.read_text() if README.is_file() else pytest.skip("needs the repository checkout")
    assert 'check_loss(cls, on_fail="collect")' in text


def test_list_into_a_closed_pipe_exits_quietly_as_sigpipe_would():
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has read enough, before the first write: every write fails with EPIPE
    process = subprocess.Popen([sys.executable, "-m", "swift_zoo._cli", "list"], stdout=write_end,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    os.close(write_end)
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, err
    assert err == ""  # no "Broken pipe", no traceback


def test_info_suggests_names_of_every_kind(make_loss_plugin, capsys):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])

    class GaloreLike(torch.optim.SGD):
        """An optimizer registered in-process for this test."""

        name = "quuxopt_adamw"

    swift_zoo.register_optimizer()(GaloreLike)
    try:
        code, _ = run("info", "quuxopt_adamv")
        assert code == 2
        assert "unknown optimizer 'quuxopt_adamv'; did you mean 'quuxopt_adamw'?" in capsys.readouterr().err
        code, _ = run("info", "qqqqzz")
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("swift-zoo: error: unknown name 'qqqqzz' Available names (losses, ")
        assert "focal" in err and "quuxopt_adamw" in err
    finally:
        swift_zoo.REGISTRY.unregister("optimizer", "quuxopt_adamw")


def test_check_exits_3_when_a_plugin_fails_to_import(make_loss_plugin, site):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])
    site.install("bad-losses", "0.1", entry_points={"bad": "bad_losses._plugin"},
                 modules={"bad_losses._plugin": "import not_a_module_anywhere\n"})
    code, text = run("check", "focal")
    assert code == 3, text
    assert "plugin discovery failed" in text and "not_a_module_anywhere" in text


def test_check_exits_3_when_a_target_fails_to_import(make_loss_plugin, site):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])
    (site.root / "alpha_losses" / "impl.py").write_text("import not_a_module_anywhere\n")
    code, text = run("check", "focal")
    assert code == 3, text
    assert "could not load alpha_losses.impl:Focal" in text


def test_check_with_a_pattern_that_selects_no_check_is_a_usage_error(make_loss_plugin):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])
    code, text = run("check", "focal", "-k", "nomatch")
    assert code == 2
    assert text.startswith("swift-zoo check: -k 'nomatch' selects no check, so nothing would be checked; checks: "
                           "check_metadata, ")
    code, text = run("check", "focal", "-k", "check_scalar")
    assert code == 0 and "check_scalar_output" in text


def test_nox_tests_refuses_a_wheel_older_than_its_sources(tmp_path):
    pytest.importorskip("nox", reason="the noxfile needs nox to import")
    noxfile = README.parent / "noxfile.py"
    if not noxfile.is_file():
        pytest.skip(f"needs the repository checkout ({noxfile})")
    import importlib.util

    spec = importlib.util.spec_from_file_location("noxfile_under_test", noxfile)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    package = tmp_path / "pkg"
    (package / "src" / "pkg").mkdir(parents=True)
    source = package / "src" / "pkg" / "mod.py"
    source.write_text("x = 1\n")
    built = tmp_path / "pkg-0.1-py3-none-any.whl"
    built.write_bytes(b"wheel")
    os.utime(built, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))  # edited after the build: the quick loop must not test the old wheel
    assert module.sources_newer_than(package, built) == [source]
    os.utime(built, (3_000, 3_000))
    assert module.sources_newer_than(package, built) == []
