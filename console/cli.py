"""`medops`: opens the console, or runs one subcommand and exits."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from medops.console.commands import COMMANDS
from medops.core import __version__
from medops.core.errors import MedopsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medops", description="Operations console for the medops resource core.")
    parser.add_argument("--version", action="version", version=f"medops {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (else MEDOPS_CONFIG, else the XDG one)")
    parser.add_argument("--theme", metavar="NAME", help="console theme (a file in themes/)")
    parser.add_argument("--no-mouse", action="store_true", help="keyboard only: do not capture the mouse")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"medops.console.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever medops creates (ledger, knowledge base, their WAL files, scratch) is the user's alone.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            from medops.console.commands.run import run_console

            return run_console(args)
        return int(args.handler(args))
    except MedopsError as exc:
        print(f"medops: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
