"""What the loss comparisons share: the declared equivalences, their parsed spellings, stubs and tolerances.

Each comparison reads the records a loss declares (``BaseLoss.equivalents``) and runs exactly the spelling
written there: a record's ``name`` is a Python call (``DPOConfig(loss_type='sigmoid', beta=0.1)``) or
command-line flags (``--rlhf_type dpo --loss_type sigmoid``), parsed here. The libraries' trainers are
driven without a model: an instance is made with ``Trainer.__new__`` (no ``__init__``: no model, no
dataset), given the attributes its loss code reads (the config values, a CPU accelerator stub), and its own
loss method is called on a stub model that returns fixed per-token log-probs or logits. The gradients are
taken with respect to those tensors.
"""

from __future__ import annotations

import ast
import re
from types import SimpleNamespace
from typing import Any

import torch

import swift_zoo

DISTRIBUTION = "swift-loss-zoo"
RTOL, ATOL = 1e-6, 1e-9  # float64 comparisons
RTOL32, ATOL32 = 2e-5, 2e-6  # where the library computes in float32


def declared(library: str, prefix: str = "", *, equal: bool = True) -> list[tuple[str, Any]]:
    """``(loss name, record)`` for every record of ``library`` whose name starts with ``prefix``."""
    found = []
    for entry in sorted(swift_zoo.list_losses(), key=lambda e: e.name):
        if re.sub(r"[-_.]+", "-", entry.distribution or "").lower() != DISTRIBUTION:
            continue
        cls = swift_zoo.REGISTRY.load_entry(entry)
        for record in getattr(cls, "equivalents", ()):
            if record.library == library and record.name.startswith(prefix) and record.equal == equal:
                found.append((entry.name, record))
    return found


def record_id(item: tuple[str, Any]) -> str:
    name, record = item
    return f"{name}:{record.name}"


def parse_call(spelling: str) -> tuple[str, dict[str, Any]]:
    """``"DPOConfig(loss_type='sigmoid', beta=0.1)"`` -> ``("DPOConfig", {"loss_type": "sigmoid", "beta": 0.1})``."""
    node = ast.parse(spelling, mode="eval").body
    if not isinstance(node, ast.Call) or node.args:
        raise ValueError(f"expected a call with keyword arguments only, got {spelling!r}")
    return ast.unparse(node.func), {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}


def parse_flags(spelling: str) -> dict[str, str]:
    """``"--rlhf_type dpo --loss_type sigmoid bco_pair"`` -> ``{"rlhf_type": "dpo", "loss_type": "sigmoid bco_pair"}``."""
    found: dict[str, str] = {}
    key = None
    for token in spelling.split():
        if token.startswith("--"):
            key = token[2:]
            found[key] = ""
        elif key is not None:
            found[key] = f"{found[key]} {token}".strip()
    return found


def build_zoo(name: str, record: Any) -> swift_zoo.BaseLoss:
    return swift_zoo.build_loss(name, **record.zoo_kwargs)


class Accelerator:
    """The few accelerate.Accelerator members the trainers' loss code reads, for one CPU process."""

    device = torch.device("cpu")
    num_processes = 1

    @staticmethod
    def gather(tensor):
        return tensor

    @staticmethod
    def gather_for_metrics(tensor):
        return tensor

    @staticmethod
    def unwrap_model(model):
        return model


class StubModel:
    """Called like a model; returns ``outputs`` (a callable of the call's kwargs, or a fixed namespace)."""

    training = True
    is_gradient_checkpointing = False

    def __init__(self, outputs):
        self._outputs = outputs

    def __call__(self, *args, **kwargs):
        return self._outputs(*args, **kwargs) if callable(self._outputs) else self._outputs


def namespace(**values: Any) -> SimpleNamespace:
    return SimpleNamespace(**values)


def assert_close(found: torch.Tensor, expected: torch.Tensor, what: str, *, rtol: float = RTOL,
                 atol: float = ATOL) -> None:
    found, expected = found.detach().double(), expected.detach().double()
    assert found.shape == expected.shape, f"{what}: shape {tuple(found.shape)} != {tuple(expected.shape)}"
    assert torch.allclose(found, expected, rtol=rtol, atol=atol), (
        f"{what}: max |diff| {(found - expected).abs().max().item():.3e} (zoo {found.flatten()[:4].tolist()}, "
        f"library {expected.flatten()[:4].tolist()})"
    )
