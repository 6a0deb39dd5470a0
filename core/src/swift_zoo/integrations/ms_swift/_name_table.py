"""The ms-swift name table of ``docs/ms_swift.md``: for each zoo loss, where it runs in ms-swift through this
integration, and the ms-swift spellings it equals or differs from.

The spellings come from the losses' own declarations (:attr:`swift_zoo.BaseLoss.equivalents`, library
``ms-swift``), which ``nox -s references`` compares with ms-swift's code directly; where a loss runs
comes from its family (:mod:`~swift_zoo.integrations.ms_swift._families`). One source each, so the
table cannot drift from either. ``tests_integrations/ms_swift/test_equalities.py`` runs every
declared equality that this integration can take through the integration itself.
Torch-free: callers hand in the loss classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from swift_zoo.integrations.ms_swift._families import Family

LIBRARY = "ms-swift"
NOT_WIRED = {
    "policy": "not wired: see [GRPO](#grpo)",
    "distill": "not wired: the GKD trainer's divergence is inline",
    "reward": "not wired: `--rlhf_type rm` is TRL's RewardTrainer, its loss inline",
    "other": "not wired",
}
NOTES = {
    "fused_linear_cross_entropy": "reads hidden states and the LM head weight; ms-swift hands a loss the logits "
                                  "(use `zoo:cross_entropy`)",
    "weighted_sum": "runs where all its terms run (e.g. `dpo` + `hinge` under `--rlhf_type dpo`); terms of "
                    "different families need inputs no single ms-swift trainer supplies and are refused",
    "matryoshka": "runs where the embedding loss it wraps runs",
}


def equivalences(cls: type) -> list[Any]:
    """The ms-swift records among a loss class's declared equivalents."""
    return [e for e in getattr(cls, "equivalents", ()) if e.library == LIBRARY]


def where(family: Family | None) -> str:
    """The "runs under" cell: the command, ``not wired`` with the reason, or a composition's rule."""
    if family is None:
        return "where the losses it wraps run"
    return NOT_WIRED.get(family.name, "not wired") if family.unsupported else f"`{family.where}`"


def rows(losses: Iterable[tuple[str, type, Family | None]]) -> list[list[str]]:
    """Table rows for ``(name, class, family or None for a composition)``, one per ms-swift spelling."""
    found = []
    for name, cls, family in losses:
        records = equivalences(cls) or [None]
        for record in records:
            cells = [f"`zoo:{name}`", where(family), "—", "", "", NOTES.get(name, "")]
            if record is not None:
                cells[2] = f"`{record.name}`"
                cells[3] = "equal" if record.equal else "differs"
                cells[4] = ", ".join(f"`{k}={v!r}`" for k, v in record.zoo_kwargs.items())
                cells[5] = "; ".join(text for text in (record.settings, record.differs, cells[5]) if text)
            found.append(cells)
    return found


def render_table(table: list[list[str]]) -> str:
    lines = ["| `--loss_type` | runs under | ms-swift's own | relation | zoo kwargs | note |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table]
    return "\n".join(lines)
