"""`medops`: opens the console, or runs one subcommand and exits."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import select
import sys
from collections.abc import Sequence

from medops.console.commands import COMMANDS
from medops.console.inert_output import inert_output
from medops.core import __version__
from medops.core.errors import MedopsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medops", description="Operations console for the medops resource core.")
    parser.add_argument("--version", action="version", version=f"medops {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (else MEDOPS_CONFIG, else the XDG one)")
    parser.add_argument("--theme", metavar="NAME", help="console theme (a file in themes/)")
    parser.add_argument("--read-only", action="store_true",
                        help="console watches only: prompts, documents (they spend quota), pausing intake, limits, "
                             "alerts and fleet actions are refused")
    parser.add_argument("--attach", action="store_true",
                        help="console with no core of its own, over the fleet's store only (store_url): prompts, "
                             "documents and searches need a core; intake and limits go to every member")
    parser.add_argument("--no-mouse", action="store_true", help="keyboard only: do not capture the mouse")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"medops.console.commands.{name}").register(subparsers)
    return parser


CLOSED_PIPE_EXIT = 128 + 13  # as a shell reports a Unix tool ended by SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever medops creates (ledger, knowledge base, their WAL files, scratch) is the user's alone.
    os.umask(0o077)
    try:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            # argparse would name them under the top-level usage; the command's own usage is the help wanted.
            _innermost_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.command is None:
            from medops.console.commands.run import run_console

            return run_console(args)
        if args.read_only and (refused := read_only_refusal(_innermost_parser(parser, args).prog, args)):
            print(refused, file=sys.stderr)
            return 2
        with inert_output():  # what the store or a ledger holds is printed, never sent to the terminal
            code = int(args.handler(args))
            sys.stdout.flush()  # output still buffered meets a closed pipe here, not in a traceback at exit
        return code
    except MedopsError as exc:
        with inert_output():
            print(f"medops: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `medops kb search pain | head -1`: the reader has what it wanted; stop quietly, as Unix tools do.
        # (Python ignores SIGPIPE, so a write to the closed pipe raises this instead of ending the process.)
        if not _stdout_closed():
            raise  # some other pipe or socket broke: that is a real error
        with contextlib.suppress(OSError):
            # Python flushes stdout again at exit: point it at /dev/null so that flush has nowhere to fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE_EXIT


def read_only_refusal(prog: str, args: argparse.Namespace) -> str:
    """Under --read-only, why the command `prog` names is refused ('' if it only reads), as the console says it."""
    changes = getattr(args, "changes", None)
    what = "this command (it is not marked read-only)" if changes is None else changes(args)
    if not what:
        return ""
    # The command's name and action, never its arguments: a prompt's text is patient data.
    action = getattr(args, "action", None)
    if isinstance(action, str) and not prog.endswith(f" {action}"):
        prog = f"{prog} {action}"  # `fleet pause`: a positional, not a subparser
    return (f"{prog}: refused under --read-only: {what}. Nothing was sent and no quota spent; run it without "
            "--read-only to do it.")


def _innermost_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command `args` chose: `medops limits history` gives the history one."""
    while True:
        chosen = [action.choices[getattr(args, action.dest)] for action in parser._actions
                  if isinstance(action, argparse._SubParsersAction) and isinstance(action.choices, dict)
                  and getattr(args, action.dest, None) in action.choices]
        if not chosen:
            return parser
        parser = chosen[0]


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (Linux marks its write end POLLERR)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


if __name__ == "__main__":
    sys.exit(main())
