"""``swift-zoo new-plugin PATH --name NAME``: the shape of ``examples/my-swift-loss`` for a new author.

The loss stub declares its inputs and examples but leaves ``per_unit_loss`` to write, so the
conformance tests fail until the formula is filled in. The optimizer stub is a working SGD with
momentum on :class:`swift_zoo.optim.ZooOptimizer` (the author replaces its ``_step``).

The name is checked first (:func:`plugin_names`): it must give a usable package name (an identifier,
not a keyword), and neither the distribution, the package nor the plugin (entry-point) name may exist
already -- ``--name loss-zoo`` would claim the zoo's own plugin name, ``--name json`` would shadow a module.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import keyword
import re
from pathlib import Path

from swift_zoo.__about__ import __version__ as core_version
from swift_zoo._errors import ConfigError

_DIST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")


def _refuse(name: str, problem: str, expected: str) -> ConfigError:
    return ConfigError(f"plugin name {name!r}: {problem}", key="name", expected=expected, found=name)


def plugin_names(name: str) -> tuple[str, str]:
    """``(package, stem)`` for the distribution ``name``, or :class:`ConfigError` saying why it cannot be used."""
    if not _DIST_RE.match(name):
        message = f"plugin name must be a distribution name like 'my-loss-plugin', got {name!r}"
        raise ConfigError(message, key="name", expected="letters, digits, '-', '_', '.'", found=name)
    package = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not package.isidentifier() or keyword.iskeyword(package):
        what = "a Python keyword" if keyword.iskeyword(package) else "not an identifier"
        problem = f"its package name {package!r} is {what}"
        raise _refuse(name, problem, "a name whose package is an identifier and not a keyword, e.g. 'my-loss-plugin'")
    try:
        found = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        found = None
    if found is not None:
        problem = f"a distribution of that name is already installed ({found.metadata['Name']} {found.version})"
        raise _refuse(name, problem, "a new distribution name")
    from swift_zoo._registry import REGISTRY

    taken = {record.name.partition("@")[0]: record for record in REGISTRY.plugins()}
    if package in taken:
        problem = f"the plugin name {package!r} is already used by {taken[package].origin}"
        raise _refuse(name, problem, "a plugin name no installed plugin uses")
    if importlib.util.find_spec(package) is not None:
        problem = f"a module named {package!r} is already importable; the new package would clash with it"
        raise _refuse(name, problem, "a package name nothing else uses")
    stem = re.sub(r"_?plugin$", "", package) or package
    return package, stem if stem[0].isalpha() else f"loss_{stem}"


def _files(dist: str, package: str, loss: str, cls: str) -> dict[str, str]:
    opt, opt_cls = f"{loss}_sgd", cls.removesuffix("Loss") + "SGD"
    minor = ".".join(core_version.split(".")[:2])
    upper = f"0.{int(core_version.split('.')[1]) + 1}" if core_version.startswith("0.") else f"{int(core_version.split('.')[0]) + 1}"
    return {
        "pyproject.toml": f'''[build-system]
requires = ["hatchling>=1.20"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
description = "A swift zoo plugin providing the {loss} loss and the {opt} optimizer."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["swift-zoo-core>={minor},<{upper}", "torch>=2.1"]

[project.optional-dependencies]
test = ["pytest>=7"]

[project.entry-points.swift_zoo]
{package} = "{package}._plugin"

[tool.hatch.build.targets.wheel]
packages = ["src/{package}"]
dev-mode-dirs = ["src"]
''',
        "README.md": f'''# {dist}

A swift zoo plugin. Fill in `src/{package}/{loss}.py` (`per_unit_loss`, the docstring's formula and paper)
and replace the SGD step of `src/{package}/{opt}.py` with your method (or delete it and its hook), then
prove they fit:

```bash
pip install -e ".[test]"
pytest tests
swift-zoo check {dist}
```

Users then write `loss_type: {loss}` / `optimizer_type: {opt}` (or `{package}:{loss}` when another plugin
has the same name).
''',
        f"src/{package}/__init__.py": f'"""{dist}: a swift zoo plugin."""\n',
        f"src/{package}/_plugin.py": f'''"""The plugin module named by the entry point. No torch import here: listing must stay cheap."""

from __future__ import annotations

from swift_zoo import LossSpec, OptimizerSpec, hookimpl


@hookimpl
def swift_zoo_register_losses():
    return [LossSpec("{loss}", "{package}.{loss}:{cls}", summary="TODO: one line", reference="arXiv:TODO")]


@hookimpl
def swift_zoo_register_optimizers():
    return [OptimizerSpec("{opt}", "{package}.{opt}:{opt_cls}", summary="TODO: one line", reference="arXiv:TODO",
                          state_bytes="1 word (momentum_buffer, parameter dtype)")]
''',
        f"src/{package}/{opt}.py": f'''"""The {opt} optimizer (a stub: SGD with momentum; replace _step with your method)."""

from __future__ import annotations

from typing import Any

import torch

from swift_zoo.optim import ZooOptimizer, require_in_range, require_non_negative


class {opt_cls}(ZooOptimizer):
    r"""TODO: what it is, in one line.

    TODO: the update (this stub's is SGD with momentum), the paper (arXiv id), the defaults, the state and a
    YAML snippet:

    .. math:: m_t = \\mu\\, m_{{t-1}} + g_t,\\qquad \\theta_t = \\theta_{{t-1}} - \\eta\\, m_t

    .. code-block:: yaml

        training_args:
          optimizer_type: {opt}
          optimizer_kwargs: {{lr: 1.0e-2, momentum: 0.9}}
    """

    name = "{opt}"
    elementwise = True  # each element's update reads only its own gradient and state: any sharding works

    def __init__(self, params: Any, lr: float = 1e-2, momentum: float = 0.9) -> None:
        lr = require_non_negative(f"optimizer {{self.name!r}}", "lr", lr)
        momentum = require_in_range(f"optimizer {{self.name!r}}", "momentum", momentum, 0.0, 1.0, high_inclusive=False)
        super().__init__(params, {{"lr": lr, "momentum": momentum}})

    def _step(self) -> None:
        # called under torch.no_grad(), after the frame checked the gradients (non-finite policy)
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(param.grad)
                param.add_(buffer, alpha=-group["lr"])

    def state_bytes_for(self, param: torch.Tensor, group: dict[str, Any]) -> int:
        """The declared state size: one momentum buffer in the parameter's dtype."""
        return param.numel() * param.element_size()
''',
        f"src/{package}/{loss}.py": f'''"""The {loss} loss."""

from __future__ import annotations

import torch

from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import upcast


class {cls}(BaseLoss):
    r"""TODO: what it is, in one line.

    TODO: the formula, e.g. ``loss = sum over units of l_i / N``, and the paper (arXiv id), the
    defaults, the inputs, and a YAML snippet::

        training_args:
          loss_type: {loss}
    """

    name = "{loss}"
    reference = "arXiv:TODO"
    reduction_unit = "sample"
    inputs = (
        TensorInput("scores", ("B",), differentiable=True, doc="what the model produced"),
        TensorInput("targets", ("B",), doc="what it should have produced"),
    )

    def __init__(self, *, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        # TODO: return UnitLosses(one loss per sample, optional bool mask of counted samples),
        # computed in at least float32 so bf16/fp16 inputs stay finite:
        #     scores, targets = upcast(inputs["scores"]), upcast(inputs["targets"])
        message = "{cls}.per_unit_loss is not written yet"
        raise NotImplementedError(message)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        values = torch.randn(2, batch_size, generator=generator).to(device, dtype)
        return LossExample({{"scores": values[0], "targets": values[1]}})
''',
        "tests/test_conformance.py": f'''"""The swift zoo conformance suite on this plugin."""

from __future__ import annotations

from swift_zoo.testing import parametrize_with_checks

from {package}.{loss} import {cls}
from {package}.{opt} import {opt_cls}


@parametrize_with_checks([{cls}, {opt_cls}])
def test_swift_zoo_conformance(subject, check):
    check(subject)
''',
    }


def scaffold_plugin(path: str | Path, name: str) -> Path:
    """Create a plugin package for distribution ``name`` in ``path`` (which must not exist or be empty)."""
    package, loss = plugin_names(name)
    root = Path(path)
    if root.exists() and any(root.iterdir()):
        message = f"{root} already exists and is not empty; choose a new folder"
        raise ConfigError(message, key="path", expected="a new or empty folder", found=str(root))
    cls = "".join(part.title() for part in loss.split("_")) + "Loss"
    for relative, text in _files(name, package, loss, cls).items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root
