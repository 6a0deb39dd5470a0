"""Distributed capability as data: for each way of wrapping or sharding a model, whether an optimizer is
supported there (tested equal to one process) or refused (a clear error at its first step), and how.

Torch-free, so catalogue specs can carry it and ``swift-zoo info`` / ``docs/distributed.md`` can show it
without importing an implementation. The optimizer class carries the same record as its ``distributed``
attribute, which :class:`~swift_zoo.optim.ZooOptimizer` enforces at the first step; the conformance suite
checks that the two agree and holds a declared FSDP2 support to its equality check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

SUPPORTED, REFUSED, UNTESTED = "supported", "refused", "untested"
STATUSES = (SUPPORTED, REFUSED, UNTESTED)

#: the wrappers a record covers, in display order, with the words docs and errors use for them
WRAPPERS: dict[str, str] = {
    "ddp": "DDP (replicated parameters, all-reduced gradients)",
    "fsdp2": "FSDP2 (fully_shard: DTensor parameters, Shard(0) on a 1-D mesh)",
    "zero1_2": "DeepSpeed ZeRO-1/2 (flat fp32 partitions of the parameters)",
    "zero3": "DeepSpeed ZeRO-3 (partitioned parameters: ds_id / ds_numel)",
    "fsdp1_flat": "FSDP1 flat parameters (use_orig_params=False)",
}


@dataclass(frozen=True)
class Support:
    """One wrapper's verdict: ``status`` is ``"supported"``, ``"refused"`` or ``"untested"``; ``how`` says how
    it works there (supported), or why it cannot and what to do instead (refused)."""

    status: str = UNTESTED
    how: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            message = f"Support.status must be one of {', '.join(STATUSES)}, got {self.status!r}"
            raise ValueError(message)

    @property
    def supported(self) -> bool:
        return self.status == SUPPORTED

    @property
    def refused(self) -> bool:
        return self.status == REFUSED


@dataclass(frozen=True)
class DistributedCapability:
    """Per wrapper (:data:`WRAPPERS`), a :class:`Support`. Undeclared wrappers are ``untested``."""

    ddp: Support = Support()
    fsdp2: Support = Support()
    zero1_2: Support = Support()
    zero3: Support = Support()
    fsdp1_flat: Support = Support()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, Support):
                message = f"DistributedCapability.{f.name} must be a Support, got {type(value).__name__} {value!r}"
                raise TypeError(message)

    def support(self, wrapper: str) -> Support:
        if wrapper not in WRAPPERS:
            message = f"unknown wrapper {wrapper!r}; expected one of {', '.join(WRAPPERS)}"
            raise KeyError(message)
        return getattr(self, wrapper)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(getattr(self, name)) for name in WRAPPERS}

    def summary(self) -> str:
        """One line: ``ddp supported, fsdp2 supported, zero1_2 refused, ...``."""
        return ", ".join(f"{name} {getattr(self, name).status}" for name in WRAPPERS)
