"""Fixtures that install real (if tiny) distributions: a ``*.dist-info`` folder with METADATA and
``entry_points.txt`` next to the plugin's modules, on ``sys.path``. ``importlib.metadata`` sees them
exactly as it sees pip-installed ones."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_sources import loss_impl_module, loss_plugin_module

import swift_zoo


class SitePackages:
    def __init__(self, root: Path) -> None:
        self.root = root

    def install(self, dist: str, version: str, *, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        """Write ``modules`` ({dotted name: source}) and a dist-info declaring ``entry_points``."""
        for dotted, source in modules.items():
            parts = dotted.split(".")
            folder = self.root.joinpath(*parts[:-1])
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, len(parts)):
                init = self.root.joinpath(*parts[:i], "__init__.py")
                if not init.exists():
                    init.write_text("")
            (folder / f"{parts[-1]}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[swift_zoo]"] + [f"{name} = {value}" for name, value in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        importlib.invalidate_caches()
        swift_zoo.reload_plugins()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh site folder on sys.path, with the registry rescanned before and after."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for var in ("SWIFT_ZOO_STRICT_PLUGINS", "SWIFT_ZOO_DISABLE_PLUGINS", "SWIFT_ZOO_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(var, raising=False)
    before = set(sys.modules)
    swift_zoo.reload_plugins()
    yield SitePackages(root)
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if getattr(module, "__file__", None) and str(root) in str(module.__file__):
            del sys.modules[name]
    importlib.invalidate_caches()
    swift_zoo.reload_plugins()


@pytest.fixture
def make_loss_plugin(site):
    """Install a distribution whose plugin provides losses ``names`` (lazy string targets)."""

    def make(dist: str, plugin: str, names: list[str], *, version: str = "1.0.0", scale: float = 1.0,
             package: str | None = None, plugin_source: str | None = None) -> str:
        package = package or dist.replace("-", "_")
        site.install(
            dist, version,
            entry_points={plugin: f"{package}._plugin"},
            modules={
                f"{package}._plugin": plugin_source or loss_plugin_module(package, names),
                f"{package}.impl": loss_impl_module(names, scale),
            },
        )
        return package

    return make


@pytest.fixture
def zoo_plain_sgd():
    """``zoo_plain_sgd``: plain SGD on the ZooOptimizer frame, registered in-process for the test."""
    from swift_zoo.optim import ZooOptimizer

    class ZooPlainSgd(ZooOptimizer):
        """Plain SGD: p <- p - lr * g."""

        name = "zoo_plain_sgd"

        def __init__(self, params, lr: float = 0.1) -> None:
            super().__init__(params, {"lr": lr})

        def _step(self) -> None:
            for group in self.param_groups:
                for param in group["params"]:
                    if param.grad is not None:
                        param.add_(param.grad, alpha=-group["lr"])

    swift_zoo.register_optimizer()(ZooPlainSgd)
    yield ZooPlainSgd
    swift_zoo.REGISTRY.unregister("optimizer", "zoo_plain_sgd")
