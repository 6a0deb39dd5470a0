"""Which names in other libraries a loss equals, under which settings, and where it differs.

Practitioners move between TRL, verl, ms-swift and Liger; each zoo loss says which of their names it equals,
as data (:attr:`swift_zoo.BaseLoss.equivalents`). ``swift-zoo info`` and ``docs/losses.md`` show it, and the
``references`` nox session compares every declared equivalence numerically (values and gradients) against the
installed library. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LIBRARIES = ("trl", "verl", "ms-swift", "liger", "openrlhf", "transformers")


@dataclass(frozen=True)
class Equivalence:
    """One library's spelling of (nearly) the same loss.

    :param library: one of :data:`LIBRARIES`.
    :param name: how that library spells it, e.g. ``"DPOConfig(loss_type='sigmoid')"`` or
        ``"--rlhf_type dpo --loss_type sigmoid"``.
    :param versions: the versions the equivalence was checked against, e.g. ``"trl==1.16.0"``.
    :param zoo_kwargs: the zoo constructor kwargs that give the equivalence (``{}``: the defaults).
    :param settings: the library-side settings it needs, in that library's words.
    :param differs: ``""`` when equal; otherwise where the two differ and why (a declared difference is not
        compared numerically, it is documented).
    """

    library: str
    name: str
    versions: str = ""
    zoo_kwargs: Mapping[str, Any] = field(default_factory=dict)
    settings: str = ""
    differs: str = ""

    def __post_init__(self) -> None:
        if self.library not in LIBRARIES:
            message = f"Equivalence.library must be one of {', '.join(LIBRARIES)}, got {self.library!r}"
            raise ValueError(message)
        object.__setattr__(self, "zoo_kwargs", dict(self.zoo_kwargs))

    def __hash__(self) -> int:
        # repr: zoo kwargs may hold lists and mappings (weighted_sum's losses), which do not hash
        return hash((self.library, self.name, self.versions, repr(sorted(self.zoo_kwargs.items())), self.settings,
                     self.differs))

    @property
    def equal(self) -> bool:
        return not self.differs

    def describe(self) -> str:
        """One line for ``swift-zoo info``."""
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.zoo_kwargs.items())
        text = f"{self.library} {self.name}"
        if self.versions:
            text += f" [{self.versions}]"
        if kwargs:
            text += f" with zoo kwargs {kwargs}"
        if self.settings:
            text += f"; {self.settings}"
        return text + (f" -- differs: {self.differs}" if self.differs else " -- equal")
