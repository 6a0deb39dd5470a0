"""Every ``equivalents`` record of the zoo's losses is well formed: its zoo kwargs build the loss, and its
spelling is a Python call or command-line flags that ``tests_references/losses`` can parse and run."""

from __future__ import annotations

import ast

import pytest

import swift_zoo
from swift_zoo import Equivalence

RECORDS = [
    (entry.name, record)
    for entry in sorted(swift_zoo.list_losses(), key=lambda e: e.name)
    if (entry.distribution or "").replace("_", "-") == "swift-loss-zoo"
    for record in swift_zoo.REGISTRY.load_entry(entry).equivalents
]
FAMILIES_WITH_RECORDS = ("preference", "reference_free", "unpaired", "reward", "distill", "embedding")


@pytest.mark.parametrize("item", RECORDS, ids=[f"{name}:{record.name}" for name, record in RECORDS])
def test_record_is_well_formed(item):
    name, record = item
    assert isinstance(record, Equivalence)
    assert record.versions, "a record says which version it was checked against"
    swift_zoo.build_loss(name, **record.zoo_kwargs)
    if record.name.startswith("--"):
        keys = [token[2:] for token in record.name.split() if token.startswith("--")]
        assert keys and all(key.isidentifier() for key in keys)
    elif record.name.endswith(")") or ") aggregated by " in record.name:
        # a config call (keywords only), or a library function called on named tensors (verl's kl_penalty)
        call = ast.parse(record.name.split(" aggregated by ")[0], mode="eval").body
        assert isinstance(call, ast.Call) and all(isinstance(arg, ast.Name) for arg in call.args)
        for keyword in call.keywords:
            ast.literal_eval(keyword.value)
    elif "=" in record.name and not record.name.startswith("-"):
        # Hydra-style config overrides (verl): "actor.policy_loss.loss_mode='vanilla', actor.loss_agg_mode=..."
        for override in record.name.split(", "):
            path, _, value = override.partition("=")
            assert all(part.isidentifier() for part in path.split(".")), override
            ast.literal_eval(value)
    else:
        assert not record.equal, f"{record.name!r} is neither a call nor flags: only a documented difference may be"
    assert record.describe().endswith("-- equal" if record.equal else f"-- differs: {record.differs}")


def test_every_loss_of_these_families_declares_its_equivalents():
    missing = [entry.name for entry in swift_zoo.list_losses()
               if (entry.distribution or "").replace("_", "-") == "swift-loss-zoo"
               and entry.spec.target_path.split(":")[0].split(".")[1] in FAMILIES_WITH_RECORDS
               and entry.name not in {"tvd"}  # Liger's TVD is a Triton kernel only: nothing to compare on CPU
               and not swift_zoo.REGISTRY.load_entry(entry).equivalents]
    assert not missing
