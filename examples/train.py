"""Config-driven training with swift zoo losses and optimizers on a tiny causal LM, on a CPU.

    python examples/train.py examples/configs/dpo.yaml          # runs sft.yaml first if needed
    python examples/train.py examples/configs/sft.yaml --set training_args.optimizer_type=muon --check

Each run writes runs/<name>/{metrics.jsonl, loss_curve.png, summary.json, model.pt} and prints the
held-out measurement that proves its family learns (``--check``: exit 1 when it does not). A mistake in
the config or a ``--set`` (an unknown loss, a typo such as ``training_args.max_step``) is one line on
stderr and exit status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tinylm.loop import load, train

import swift_zoo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a YAML config (examples/configs/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. training_args.optimizer_type=lion")
    parser.add_argument("--runs", default="runs", help="output folder (default: runs/)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the run's proof fails")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args()
    try:
        summary = train(load(args.config, args.overrides), runs=Path(args.runs), quiet=args.quiet)
    except swift_zoo.SwiftZooError as exc:  # a config or plugin mistake: one line, as the swift-zoo CLI prints it
        if args.debug:
            raise
        print(f"train.py: error: {str(exc).splitlines()[0]} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return 0 if (summary["proof"]["passed"] or not args.check) else 1


if __name__ == "__main__":
    raise SystemExit(main())
