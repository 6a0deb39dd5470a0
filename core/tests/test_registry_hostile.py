"""Plugins that misbehave must not harm the host or each other (DESIGN §9): any exception a plugin
raises is isolated (``SystemExit`` included, ``KeyboardInterrupt`` excepted), its printing is captured
and attributed, registrations it makes are its own, plugin names stay bound to one distribution, and
discovery is thread-safe."""

from __future__ import annotations

import io
import sys
import threading

import pytest
from plugin_sources import loss_impl_module, loss_plugin_module

import swift_zoo
from swift_zoo import AmbiguousNameError, PluginImportError, SwiftZooPluginWarning
from swift_zoo._cli.main import main

ARGPARSE_AT_IMPORT = """
import argparse
parser = argparse.ArgumentParser(prog="evil-tool")
parser.add_argument("--level", type=int)
parser.parse_args(["list", "losses"])   # what sys.argv holds under `swift-zoo list losses`
"""


RACE_SECONDS = 2.0


def run_cli(*argv):
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def install_bad(site, source, *, dist="evil-dist", plugin="evil"):
    package = dist.replace("-", "_")
    site.install(dist, "6.6.6", entry_points={plugin: f"{package}._plugin"}, modules={f"{package}._plugin": source})


# ------------------------------------------------------------------ item 1: any exception is isolated
def test_a_plugin_calling_parse_args_at_import_is_isolated_and_its_usage_text_attributed(make_loss_plugin, site,
                                                                                         capfd):
    make_loss_plugin("good-losses", "good", ["focal"])
    install_bad(site, ARGPARSE_AT_IMPORT)
    with pytest.warns(SwiftZooPluginWarning) as caught:
        listed = {e.qualified_name for e in swift_zoo.list_losses()}
    assert "good:focal" in listed
    message = str(caught[0].message)
    assert "plugin 'evil' (evil_dist._plugin, from evil-dist 6.6.6) failed at import" in message
    assert "SystemExit: the plugin called sys.exit(2)" in message
    assert "it printed: 'evil-tool: error: unrecognized arguments: list losses'" in message
    printed = capfd.readouterr()
    assert "usage:" not in printed.out + printed.err  # the plugin's usage never reaches the host's streams
    assert swift_zoo.build_loss("focal").scale == 1.0
    assert swift_zoo.build_from_config({"training_args": {"loss_type": "focal"}}).loss is not None
    record = {p.name: p for p in swift_zoo.list_plugins()}["evil"]
    assert record.status == "error" and record.errors[0].error_summary.startswith("SystemExit")


def test_the_cli_survives_a_plugin_that_exits(make_loss_plugin, site, capfd):
    make_loss_plugin("good-losses", "good", ["focal"])
    install_bad(site, ARGPARSE_AT_IMPORT)
    with pytest.warns(SwiftZooPluginWarning):
        code, text = run_cli("list", "losses")
    assert code == 0 and "good:focal" in text and "usage:" not in text
    assert "1 plugin(s) failed to load: evil" in text
    swift_zoo.reload_plugins()
    with pytest.warns(SwiftZooPluginWarning):
        code, text = run_cli("plugins")
    assert code == 0 and "SystemExit" in text
    assert "usage:" not in capfd.readouterr().err


@pytest.mark.parametrize("raised", ["SystemExit(3)", "GeneratorExit()", "type('Odd', (BaseException,), {})()"])
def test_a_hook_raising_any_base_exception_is_isolated(make_loss_plugin, raised):
    make_loss_plugin("good-losses", "good", ["focal"])
    make_loss_plugin("hook-losses", "hooky", ["x"], plugin_source=f"""
from swift_zoo import hookimpl

@hookimpl
def swift_zoo_register_losses():
    raise {raised}
""")
    with pytest.warns(SwiftZooPluginWarning, match="'hooky'.*failed at swift_zoo_register_losses"):
        assert "good:focal" in {e.qualified_name for e in swift_zoo.list_losses()}


def test_a_lazy_target_that_exits_is_a_plugin_import_error(make_loss_plugin, site):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])
    (site.root / "alpha_losses" / "impl.py").write_text("print('booting'); raise SystemExit(5)\n")
    with pytest.raises(PluginImportError, match=r"alpha:focal \(from alpha-losses 1.0.0\).*sys.exit\(5\).*booting"):
        swift_zoo.get_loss("focal")


def test_keyboard_interrupt_still_propagates(make_loss_plugin, site):
    install_bad(site, "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        swift_zoo.list_losses()


def test_output_of_a_plugin_that_loads_is_echoed_on_stderr_under_its_name(make_loss_plugin, capfd):
    source = "print('hello from alpha')\n" + loss_plugin_module("alpha_losses", ["focal"])
    make_loss_plugin("alpha-losses", "alpha", ["focal"], plugin_source=source)
    code, text = run_cli("list", "losses", "--json")
    assert code == 0 and "hello" not in text  # stdout stays machine-readable
    err = capfd.readouterr().err
    assert "swift-zoo: plugin 'alpha' (alpha-losses 1.0.0) printed: hello from alpha" in err


def test_a_plugin_that_queries_the_registry_while_loading_fails_alone(make_loss_plugin):
    make_loss_plugin("good-losses", "good", ["focal"])
    make_loss_plugin("nosy-losses", "nosy", ["x"], plugin_source="import swift_zoo\nswift_zoo.list_losses()\n")
    with pytest.warns(SwiftZooPluginWarning, match="'nosy'.*must not query the registry"):
        assert "good:focal" in {e.qualified_name for e in swift_zoo.list_losses()}


# ---------------------------------------------------- item 2: a plugin cannot replace a name it does not own
HIJACK = """
import swift_zoo
from swift_zoo import BaseLoss

class Hijack(BaseLoss):
    '''Not focal at all.'''

swift_zoo.LOSS_MAPPING["focal"] = Hijack
"""


def test_a_mapping_assignment_at_plugin_import_belongs_to_that_plugin(make_loss_plugin, site):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])
    install_bad(site, HIJACK)
    with pytest.raises(AmbiguousNameError) as info:
        swift_zoo.get_loss("focal")
    assert "evil:focal  (from evil-dist 6.6.6)" in str(info.value)
    assert "alpha:focal  (from alpha-losses 1.0.0)" in str(info.value)
    assert swift_zoo.get_loss("alpha:focal").__name__ == "Focal"
    assert swift_zoo.get_loss("evil:focal").__name__ == "Hijack"
    assert not any(r.name == "local" for r in swift_zoo.list_plugins())  # nothing was registered "in-process"
    code, text = run_cli("info", "evil:focal")
    assert code == 0 and "from evil-dist 6.6.6" in text and "this process" not in text


def test_a_registration_made_while_a_lazy_target_imports_belongs_to_its_plugin(make_loss_plugin, site):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])
    make_loss_plugin("beta-losses", "beta", ["dice"])
    impl = site.root / "beta_losses" / "impl.py"
    impl.write_text(impl.read_text() + "\nimport swift_zoo\nswift_zoo.register_loss('focal', override=True)(Dice)\n")
    assert swift_zoo.get_loss("focal").__name__ == "Focal"
    assert swift_zoo.get_loss("dice").__name__ == "Dice"  # imports beta's implementation, which claims 'focal'
    with pytest.raises(AmbiguousNameError, match="beta:focal  \\(from beta-losses 1.0.0\\)"):
        swift_zoo.get_loss("focal")


def test_plugin_code_cannot_unregister(make_loss_plugin, site):
    from swift_zoo import BaseLoss

    class Mine(BaseLoss):
        """Mine."""

    swift_zoo.register_loss("mine")(Mine)
    try:
        install_bad(site, "import swift_zoo\nswift_zoo.REGISTRY.unregister('loss', 'mine')\n")
        with pytest.warns(SwiftZooPluginWarning, match="tried to unregister loss 'mine'"):
            assert swift_zoo.get_loss("mine") is Mine
    finally:
        swift_zoo.REGISTRY.unregister("loss", "mine")


# ------------------------------------------------------ item 3: a plugin name is bound to one distribution
def test_a_plugin_name_claimed_by_two_distributions_names_neither(site):
    # the impostor's files come first in the folder and on sys.path
    site.install("aaa-impostor", "9.9", entry_points={"alpha": "aaa_impostor._plugin"},
                 modules={"aaa_impostor._plugin": loss_plugin_module("aaa_impostor", ["focal"]),
                          "aaa_impostor.impl": loss_impl_module(["focal"], scale=666.0)})
    site.install("alpha-losses", "1.0", entry_points={"alpha": "alpha_losses._plugin"},
                 modules={"alpha_losses._plugin": loss_plugin_module("alpha_losses", ["focal"]),
                          "alpha_losses.impl": loss_impl_module(["focal"])})
    with pytest.warns(SwiftZooPluginWarning, match="plugin name 'alpha' is claimed by 2 distributions"):
        with pytest.raises(AmbiguousNameError) as info:
            swift_zoo.get_loss("alpha:focal")
    message = str(info.value)
    assert "the plugin name 'alpha' is claimed by 2 distributions" in message
    assert "alpha@aaa_impostor:focal  (from aaa-impostor 9.9)" in message
    assert "alpha@alpha_losses:focal  (from alpha-losses 1.0)" in message
    assert swift_zoo.build_loss("alpha@alpha_losses:focal").scale == 1.0
    assert swift_zoo.build_loss("alpha@aaa_impostor:focal").scale == 666.0
    names = {p.name for p in swift_zoo.list_plugins()}
    assert {"alpha@aaa_impostor", "alpha@alpha_losses"} <= names and "alpha" not in names


def test_an_entry_point_named_local_is_refused(site):
    site.install("sneaky", "1.0", entry_points={"local": "sneaky._plugin"},
                 modules={"sneaky._plugin": loss_plugin_module("sneaky", ["focal"]),
                          "sneaky.impl": loss_impl_module(["focal"])})
    with pytest.warns(SwiftZooPluginWarning, match="reserved for in-process registrations"):
        assert "local:focal" not in {e.qualified_name for e in swift_zoo.list_losses()}


# ------------------------------------------------------------------------ item 5: thread-safe discovery
def test_reload_racing_with_lookups_never_raises(make_loss_plugin):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])
    errors: list[BaseException] = []
    stop = threading.Event()

    def look_up() -> None:
        while not stop.is_set():
            try:
                swift_zoo.list_losses()
                swift_zoo.list_plugins()
            except BaseException as exc:  # any error is the bug
                errors.append(exc)
                return

    def reload() -> None:
        while not stop.is_set():
            swift_zoo.reload_plugins()

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=look_up) for _ in range(2)] + [threading.Thread(target=reload)]
    try:
        for thread in threads:
            thread.start()
        stop.wait(RACE_SECONDS)  # the code at the branch point raised AssertionError within about 0.8 s
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(previous)
    assert not errors, repr(errors[0])
