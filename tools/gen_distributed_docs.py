"""Generate the tables of ``docs/distributed.md`` from the registry: what the records say, nothing else.

Two generated blocks, between ``<!-- BEGIN GENERATED: <name> -->`` and ``<!-- END GENERATED: <name> -->``
markers (the prose around them is written by hand):

* ``optimizer-capabilities`` -- every registered optimizer's ``OptimizerSpec.distributed`` record (DDP, FSDP2,
  ZeRO-1/2, ZeRO-3, FSDP1 flat parameters: supported / refused / untested) and what the parameters it acts on
  are (``roles``), then each distinct record's ``how`` per wrapper, with the optimizers that share it;
* ``batch-dependent-losses`` -- every registered loss whose class declares ``batch_dependent`` (its reduction
  unit, the reason, and what to do under DDP: pass the loss's ``baseline_key`` input, or gather).

Deterministic, so ``--check`` tells whether the page is stale (CI: the nox session ``catalogue``).

Usage::

    python tools/gen_distributed_docs.py            # rewrite the generated blocks of docs/distributed.md
    python tools/gen_distributed_docs.py --check    # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAGE = REPO_ROOT / "docs" / "distributed.md"
COMMAND = "python tools/gen_distributed_docs.py"
WRAPPER_COLUMNS = {"ddp": "DDP", "fsdp2": "FSDP2", "zero1_2": "ZeRO-1/2", "zero3": "ZeRO-3", "fsdp1_flat": "FSDP1 flat"}
STATUS_CELLS = {"supported": "supported", "refused": "**refused**", "untested": "untested"}
DISTRIBUTIONS = {"optimizer": "swift-optim-zoo", "loss": "swift-loss-zoo"}  # this repository's, not whatever is installed
_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
                    re.S)


def ours(entries: list[Any], kind: str) -> list[Any]:
    wanted = DISTRIBUTIONS[kind]
    return [e for e in entries if re.sub(r"[-_.]+", "-", e.distribution or "").lower() == wanted]


def optimizer_capabilities() -> str:
    import swift_zoo
    from swift_zoo._capability import WRAPPERS

    entries = sorted(ours(swift_zoo.list_optimizers(), "optimizer"), key=lambda e: e.name)
    header = ["optimizer", "acts on", *WRAPPER_COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    records: dict[Any, list[str]] = {}
    for entry in entries:
        record = entry.spec.distributed
        roles = ", ".join(entry.spec.roles) if entry.spec.roles else "all"
        cells = [STATUS_CELLS[record.support(w).status] for w in WRAPPER_COLUMNS]
        lines.append(f"| `{entry.name}` | {roles} | " + " | ".join(cells) + " |")
        records.setdefault(record, []).append(f"`{entry.name}`")
    lines += ["", "How, per record (optimizers sharing a record share the text):", ""]
    for record, names in records.items():
        lines.append(f"* {', '.join(names)}:")
        for wrapper in WRAPPER_COLUMNS:
            support = record.support(wrapper)
            how = support.how or "no note"
            lines.append(f"  * {WRAPPERS[wrapper]} -- **{support.status}**: {how}")
    return "\n".join(lines) + "\n"


def batch_dependent_losses() -> str:
    import swift_zoo

    header = ["loss", "unit", "what depends on the batch (the class's `batch_dependent`)", "under DDP"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for entry in sorted(ours(swift_zoo.list_losses(), "loss"), key=lambda e: e.name):
        cls = swift_zoo.get_loss(entry.qualified_name)
        reason = getattr(cls, "batch_dependent", None)
        if not reason:
            continue
        baseline = getattr(cls, "baseline_key", None)
        if baseline:
            advice = (f"pass `{baseline}` (your all-reduced, detached estimate): then the loss no longer depends "
                      "on the rank's shard; without it each rank uses its own")
        else:
            advice = "each rank sees only its shard; for the whole batch's loss, gather the inputs (below)"
        lines.append(f"| `{entry.name}` | {cls.reduction_unit} | {reason} | {advice} |")
    return "\n".join(lines) + "\n"


GENERATORS = {"optimizer-capabilities": optimizer_capabilities, "batch-dependent-losses": batch_dependent_losses}


def render(page: str) -> str:
    """``page`` with every generated block filled in; an unknown or missing block is an error."""
    found = {match.group("name") for match in _BLOCK.finditer(page)}
    missing = sorted(set(GENERATORS) - found)
    unknown = sorted(found - set(GENERATORS))
    if missing or unknown:
        message = f"generated blocks: missing markers for {missing or 'none'}, unknown markers {unknown or 'none'}"
        raise SystemExit(message)
    return _BLOCK.sub(lambda m: m.group(1) + GENERATORS[m.group("name")]() + m.group(4), page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale instead of writing it")
    parser.add_argument("--page", type=Path, default=DEFAULT_PAGE, help=f"default: {DEFAULT_PAGE}")
    args = parser.parse_args(argv)
    current = args.page.read_text(encoding="utf-8")
    text = render(current)
    if not args.check:
        args.page.write_text(text, encoding="utf-8")
        print(f"wrote {args.page}")
        return 0
    if current == text:
        print(f"{args.page} is up to date")
        return 0
    diff = difflib.unified_diff(current.splitlines(), text.splitlines(), f"{args.page} (on disk)",
                                f"{args.page} (generated)", lineterm="")
    print(f"{args.page} is stale; regenerate it with `{COMMAND}`.\n" + "\n".join(list(diff)[:80]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
