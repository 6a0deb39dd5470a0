"""Regenerate the generated sections of ``docs/ms_swift.md`` from the data in code.

* ``ms_swift_names``: one row per swift-loss-zoo loss and ms-swift spelling -- where it runs in ms-swift
  (its family, read off the declared inputs) and the ms-swift names it equals or differs from (the
  losses' own ``equivalents`` declarations), ``swift_zoo.integrations.ms_swift._name_table``;
* ``ms_swift_bindings``: which ms-swift setting gives which zoo kwarg
  (``swift_zoo.integrations.ms_swift._bindings.BINDINGS``).

Needs torch and swift-loss-zoo (the families come from the loss classes), not ms-swift.

Usage::

    python tools/gen_ms_swift_docs.py            # rewrite the sections
    python tools/gen_ms_swift_docs.py --check    # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "ms_swift.md"
DISTRIBUTION = "swift-loss-zoo"


def name_rows() -> list[list[str]]:
    import swift_zoo
    from swift_zoo.integrations.ms_swift._families import classify
    from swift_zoo.integrations.ms_swift._name_table import rows

    losses = []
    for entry in sorted(swift_zoo.list_losses(), key=lambda e: e.name):
        if re.sub(r"[-_.]+", "-", (entry.distribution or "").lower()) != DISTRIBUTION:
            continue
        cls = swift_zoo.REGISTRY.load_entry(entry)
        losses.append((entry.name, cls, classify(cls.inputs) if cls.inputs else None))  # no inputs: a composition
    return rows(losses)


def bindings_table() -> str:
    from swift_zoo.integrations.ms_swift._bindings import BINDINGS

    lines = ["| ms-swift setting | zoo kwarg | under | losses | ms-swift's own term switched off |",
             "| --- | --- | --- | --- | --- |"]
    for b in BINDINGS:
        under = ", ".join(f"`--rlhf_type {t}`" for t in b.rlhf_types) or "`swift sft`"
        losses = ", ".join(f"`zoo:{name}`" for name in b.losses) or "any that takes it"
        if b.skip_zero:
            losses += f" (0 ignored for {', '.join(f'`zoo:{n}`' for n in b.skip_zero)})"
        term = f"`{b.host_term}`" if b.host_term else ""
        lines.append(f"| `{b.source}` | `{b.kwarg}` | {under} | {losses} | {term} |")
    return "\n".join(lines)


def sections() -> dict[str, str]:
    from swift_zoo.integrations.ms_swift._name_table import render_table

    return {"ms_swift_names": render_table(name_rows()), "ms_swift_bindings": bindings_table()}


def render(text: str) -> str:
    for key, body in sections().items():
        start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
        if start not in text or end not in text:
            message = f"{DOC} has no {start} ... {end} section"
            raise SystemExit(message)
        head, rest = text.split(start, 1)
        text = f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the generated sections are stale")
    args = parser.parse_args()
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{DOC} is stale: run python tools/gen_ms_swift_docs.py", file=sys.stderr)
            return 1
        print(f"{DOC} is current")
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
