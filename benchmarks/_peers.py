"""Other libraries' implementations of the methods we ship, for side-by-side benchmarks.

Every peer is optional: a factory imports its package when called, and a missing or broken package
becomes a skipped row with the reason (``python -m nox -s benchmarks_peers`` installs them all under
``constraints.txt``). Nothing here is imported by the zoo packages.

Two packages cannot be imported whole beside this project's torch build and are loaded module by
module instead (:func:`import_submodule`), which runs the same code:

* ``timm``: its package ``__init__`` imports ``timm.layers``, which needs torchvision; the PyPI
  torchvision for torch 2.13 is built against the CUDA torch (its ``_C.so`` links
  ``libtorch_cuda.so``) and does not load beside the CPU build (``operator torchvision::nms does
  not exist``). ``timm/optim/{lion,muon,adafactor}.py`` import only torch and their siblings.
* ``cut_cross_entropy``: its ``__init__`` imports the Triton kernels (``import triton``), which have
  no CPU backend; ``cut_cross_entropy/torch_compile.py`` (the ``impl="torch_compile"`` path) does not.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any


def import_submodule(package: str, submodule: str) -> types.ModuleType:
    """``package.submodule``, imported normally if the package imports, else without running the
    ``__init__`` of ``package`` (and of the packages between): each is registered as an empty
    namespace over its folder, so the submodule's own imports (relative or absolute) still work."""
    name = f"{package}.{submodule}"
    try:
        return importlib.import_module(name)
    except Exception:  # the package's __init__ failed: load the module alone
        for key in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
            del sys.modules[key]
    spec = importlib.util.find_spec(package.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        message = f"{package} is not installed"
        raise ImportError(message)
    parts = name.split(".")
    folder = list(spec.submodule_search_locations)[0]
    for depth in range(1, len(parts)):
        prefix = ".".join(parts[:depth])
        if prefix not in sys.modules:
            stub = types.ModuleType(prefix)
            stub.__path__ = [folder + "/" + "/".join(parts[1:depth])] if depth > 1 else [folder]
            sys.modules[prefix] = stub
    return importlib.import_module(name)


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ------------------------------------------------------------------ the peers, per method
# A factory gets (model, hidden_matrices, all_params) and returns an optimizer over the parameters the
# method acts on in our benchmark row: hidden matrices for Muon (as torch.optim.Muon takes them),
# every parameter otherwise.
Factory = Callable[[Any, list[Any], list[Any]], Any]


def _torch_optim(name: str) -> Any:
    import torch

    cls = getattr(torch.optim, name, None)
    if cls is None:
        message = f"torch.optim.{name} is not in torch {torch.__version__}"
        raise ImportError(message)
    return cls


def _lion_pytorch(model: Any, matrices: list[Any], params: list[Any]) -> Any:
    from lion_pytorch import Lion

    return Lion(params, lr=1e-4, weight_decay=0.0, use_triton=False)


def _po(name: str) -> Any:
    return getattr(importlib.import_module("pytorch_optimizer"), name)


def _timm(module: str, name: str) -> Any:
    return getattr(import_submodule("timm.optim", module), name)


def _heavyball(name: str) -> Any:
    return getattr(importlib.import_module("heavyball"), name)


def _adam_mini_reference(model: Any, matrices: list[Any], params: list[Any]) -> Any:
    from adam_mini import Adam_mini

    hidden = matrices[0].shape[0]
    return Adam_mini(model.named_parameters(), lr=1e-3, dim=hidden, n_heads=16, verbose=False)


def _galore_reference(model: Any, matrices: list[Any], params: list[Any]) -> Any:
    from galore_torch import GaLoreAdamW

    ids = {id(m) for m in matrices}
    rest = [p for p in params if id(p) not in ids]
    return GaLoreAdamW([{"params": rest}, {"params": matrices, "rank": 128, "update_proj_gap": 200, "scale": 0.25,
                                          "proj_type": "std"}], lr=1e-3)


def _apollo_mini_reference(model: Any, matrices: list[Any], params: list[Any]) -> Any:
    from apollo_torch import APOLLOAdamW

    ids = {id(m) for m in matrices}
    rest = [p for p in params if id(p) not in ids]
    return APOLLOAdamW([{"params": rest}, {"params": matrices, "rank": 1, "proj": "random", "scale_type": "tensor",
                                           "scale": 128, "update_proj_gap": 200, "proj_type": "std"}], lr=1e-3)


MUON_SETTINGS = {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.0}

#: method -> [(label, distribution, factory)]
PEERS: dict[str, list[tuple[str, str, Factory]]] = {
    "lion": [
        ("pytorch_optimizer.Lion", "pytorch-optimizer", lambda m, mat, ps: _po("Lion")(ps, lr=1e-4)),
        ("timm Lion", "timm", lambda m, mat, ps: _timm("lion", "Lion")(ps, lr=1e-4)),
        ("lion_pytorch.Lion", "lion-pytorch", _lion_pytorch),
    ],
    "adafactor": [
        ("torch.optim.Adafactor", "torch", lambda m, mat, ps: _torch_optim("Adafactor")(ps)),
        ("pytorch_optimizer.AdaFactor", "pytorch-optimizer", lambda m, mat, ps: _po("AdaFactor")(ps, lr=None)),
        ("transformers Adafactor", "transformers",
         lambda m, mat, ps: importlib.import_module("transformers.optimization").Adafactor(ps, lr=None)),
        ("timm Adafactor", "timm", lambda m, mat, ps: _timm("adafactor", "Adafactor")(ps)),
    ],
    "schedule_free_adamw": [
        ("schedulefree.AdamWScheduleFree", "schedulefree",
         lambda m, mat, ps: importlib.import_module("schedulefree").AdamWScheduleFree(ps, lr=2.5e-3)),
        ("pytorch_optimizer.ScheduleFreeAdamW", "pytorch-optimizer",
         lambda m, mat, ps: _po("ScheduleFreeAdamW")(ps, lr=2.5e-3)),
        ("heavyball.SFAdamW", "heavyball", lambda m, mat, ps: _heavyball("SFAdamW")(ps, lr=2.5e-3)),
    ],
    "adam_mini": [
        ("adam_mini.Adam_mini", "adam-mini", _adam_mini_reference),
        ("pytorch_optimizer.AdamMini", "pytorch-optimizer",
         lambda m, mat, ps: _po("AdamMini")(m, lr=1e-3, num_embeds=mat[0].shape[0], num_heads=16)),
    ],
    "galore_adamw": [("galore_torch.GaLoreAdamW", "galore-torch", _galore_reference)],
    "apollo_mini": [("apollo_torch.APOLLOAdamW (mini)", "apollo-torch", _apollo_mini_reference)],
    "muon": [
        ("torch.optim.Muon", "torch",
         lambda m, mat, ps: _torch_optim("Muon")(mat, adjust_lr_fn="original", **MUON_SETTINGS)),
        ("pytorch_optimizer.Muon", "pytorch-optimizer",
         lambda m, mat, ps: _po("Muon")([{"params": mat, "use_muon": True}], lr=0.02, momentum=0.95, nesterov=True)),
        ("timm Muon", "timm",
         lambda m, mat, ps: _timm("muon", "Muon")(mat, adjust_lr_fn="original", **MUON_SETTINGS)),
        ("heavyball.Muon", "heavyball", lambda m, mat, ps: _heavyball("Muon")(mat, lr=0.02)),
    ],
    "soap": [
        ("heavyball.SOAP", "heavyball",
         lambda m, mat, ps: _heavyball("SOAP")(ps, betas=(0.95, 0.95), precondition_frequency=10,
                                               max_precond_dim=10000)),
        ("pytorch_optimizer.SOAP", "pytorch-optimizer", lambda m, mat, ps: _po("SOAP")(ps)),
    ],
    "adamw": [
        ("torchao.optim.AdamW8bit", "torchao",
         lambda m, mat, ps: importlib.import_module("torchao.optim").AdamW8bit(ps)),
        ("torchao.optim.AdamW4bit", "torchao",
         lambda m, mat, ps: importlib.import_module("torchao.optim").AdamW4bit(ps)),
        ("bitsandbytes.optim.AdamW8bit", "bitsandbytes",
         lambda m, mat, ps: importlib.import_module("bitsandbytes.optim").AdamW8bit(ps)),
    ],
}
#: our own row of each method in the peers table: registry name and kwargs, and whether it acts on
#: the hidden matrices only (as its peers there do)
OURS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "lion": ("lion", {"fused": True}, False),
    "adafactor": ("adafactor", {"fused": True}, False),
    "schedule_free_adamw": ("schedule_free_adamw", {"fused": True}, False),
    "adam_mini": ("adam_mini", {"fused": True}, False),
    "galore_adamw": ("galore_adamw", {"rank": 128}, False),
    "apollo_mini": ("apollo_mini", {"fused": True}, False),
    "muon": ("muon", {"adjust_lr_fn": "original", **MUON_SETTINGS}, True),
    "soap": ("soap", {}, False),
    "adamw": ("adamw", {}, False),
}
