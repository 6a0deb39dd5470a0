"""``swift-zoo``: list, inspect and check installed swift zoo plugins.

Exit codes:

* 0 -- success;
* 1 -- a conformance check failed (``swift-zoo check``);
* 2 -- a usage error: bad arguments, an unknown or ambiguous name, nothing matched;
* 3 -- a plugin failed to load or import (in strict mode, or the one asked for);
* 4 -- any other swift zoo error (invalid plugin, configuration);
* 141 -- the reader of the output went away (``swift-zoo list | head``): nothing more is printed, as a
  command killed by SIGPIPE (128 + 13) would report.

Errors print one line (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from swift_zoo.__about__ import __version__
from swift_zoo._errors import (
    AmbiguousNameError,
    PluginImportError,
    PluginLoadError,
    SwiftZooError,
    UnknownNameError,
)

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_PLUGIN, EXIT_ERROR = 0, 1, 2, 3, 4
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swift-zoo",
        description="List, inspect and check swift zoo losses, optimizers and LR schedules.",
        epilog="Exit codes: 0 ok, 1 check failed, 2 usage / unknown name, 3 plugin failed, 4 other error.",
    )
    parser.add_argument("--version", action="version", version=f"swift-zoo-core {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("plugins", help="every installed plugin: entry point, distribution, version, status, error")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("list", help="registered losses, optimizers, schedules and advantage estimators")
    p.add_argument("kind", nargs="?", choices=["losses", "optimizers", "schedulers", "advantages"])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("info", help="signature, inputs, docstring and origin of one entry")
    p.add_argument("name", help="a name, alias or plugin:name")
    p.add_argument("--kind", choices=["losses", "optimizers", "schedulers", "advantages"])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("check", help="run the conformance suite on a distribution, plugin or name")
    p.add_argument("target", help="a distribution (swift-loss-zoo), a plugin (loss_zoo) or a name (dpo)")
    p.add_argument("--json", action="store_true")
    p.add_argument("-k", dest="pattern", help="only checks whose name contains PATTERN")

    p = sub.add_parser("new-plugin", help="scaffold a plugin package for a new author")
    p.add_argument("path", help="folder to create")
    p.add_argument("--name", required=True, help="distribution name, e.g. my-loss-plugin")

    sub.add_parser("ms-swift-plugin", help="print the path of the file for ms-swift's --external_plugins "
                   "(then --loss_type zoo:<name> and --optimizer zoo:<name> work)")
    return parser


def run(args: argparse.Namespace, out: TextIO) -> int:
    from swift_zoo._cli import _commands

    if args.command == "plugins":
        return _commands.cmd_plugins(json_output=args.json, out=out)
    if args.command == "list":
        return _commands.cmd_list(args.kind, json_output=args.json, out=out)
    if args.command == "info":
        return _commands.cmd_info(args.name, args.kind, json_output=args.json, out=out)
    if args.command == "check":
        from swift_zoo.testing._cli import run_check_cli

        return run_check_cli(args.target, as_json=args.json, pattern=args.pattern, out=out)  # same exit codes
    if args.command == "new-plugin":
        from swift_zoo._cli.scaffold import scaffold_plugin

        created = scaffold_plugin(args.path, args.name)
        print(f"created plugin package {args.name!r} in {created}", file=out)
        next_steps = f'pip install -e "{created}[test]" && pytest {created}/tests && swift-zoo check {args.name}'
        print(f"next: {next_steps}", file=out)
        return EXIT_OK
    if args.command == "ms-swift-plugin":
        from swift_zoo.integrations.ms_swift import external_plugin_path

        print(external_plugin_path(), file=out)
        return EXIT_OK
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices


def _reader_gone() -> int:
    """The standard handling of a closed pipe: point stdout at devnull so the interpreter's final flush does
    not fail again, print nothing, and exit as SIGPIPE would have."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to redirect
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        code = run(args, out)
        out.flush()
        return code
    except BrokenPipeError:
        return _reader_gone()
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        message = str(exc).splitlines()[0] if not isinstance(exc, AmbiguousNameError) else str(exc)
        print(f"swift-zoo: error: {message}", file=sys.stderr)
        if isinstance(exc, (UnknownNameError, AmbiguousNameError)):
            return EXIT_USAGE
        if isinstance(exc, (PluginLoadError, PluginImportError)):
            return EXIT_PLUGIN
        if isinstance(exc, SwiftZooError):
            return EXIT_ERROR
        if not args.debug:
            print("swift-zoo: run with --debug for the traceback", file=sys.stderr)
        return EXIT_ERROR
