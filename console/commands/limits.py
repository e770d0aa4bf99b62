"""`medops limits history`: the limit changes recorded in the data folder's ledger, newest first.

It reads ops.duckdb read-only and starts no core, so it is quick; while a medops runs
on the same data folder DuckDB keeps the file to that process, and this says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from medops.console.commands.common import reads_only
from medops.console.times import local_time
from medops.core.settings.paths import locate

if TYPE_CHECKING:  # the ledger pulls in DuckDB: only the handler imports it
    from medops.core.ledger.limit_history import LimitChangeHistory
    from medops.core.snapshot import LimitChange

# medops.core.ledger.limit_history.MAX_HISTORY, copied so `medops --help` need not load DuckDB
# (tests/console/test_cli_limits.py keeps the two equal).
MAX_HISTORY = 10_000
DEFAULT_SHOWN = 20


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("limits", help="limits changed while running, across runs")
    actions = parser.add_subparsers(dest="limits_action", metavar="ACTION", required=True)
    history = actions.add_parser("history", help="the latest limit changes recorded in the ledger, newest first "
                                                 "(local times)")
    history.add_argument("--key", metavar="KEY", help="only this setting's changes, e.g. io_threads")
    history.add_argument("--limit", metavar="N", type=int, default=DEFAULT_SHOWN,
                         help=f"changes at most (1-{MAX_HISTORY}, default {DEFAULT_SHOWN})")
    history.add_argument("--json", action="store_true",
                         help="print them as JSON Lines, one change a line: at (epoch seconds), at_local, key, old, "
                              "new, by; a note (no ledger yet, or another medops holds it) goes to stderr")
    history.set_defaults(handler=limits_history, changes=reads_only)


def limits_history(args: argparse.Namespace) -> int:
    from medops.core.ledger.limit_history import read_ledger_file

    check_key(args.key)
    path = locate().ops_db
    history = read_ledger_file(path, args.limit, args.key)
    if args.json:
        for record in json_records(history):
            print(json.dumps(record))
        if history.note:
            print(f"medops limits history: {history.note}", file=sys.stderr)
        return 0
    for line in text_lines(history, args.key):
        print(line)
    return 0


def text_lines(history: LimitChangeHistory, key: str | None) -> list[str]:
    """One line per change: local date and time with the zone, key, old -> new, who."""
    if not history.changes:
        about = f" to {key}" if key else ""
        return [history.note or f"no limit changes{about} recorded yet"]
    key_width = max(len(c.key) for c in history.changes)
    change_width = max(len(transition(c)) for c in history.changes)
    lines = [f"{local_time(c.at):%Y-%m-%d %H:%M:%S %Z}  {c.key:<{key_width}}  {transition(c):<{change_width}}  "
             f"by {c.by}" for c in history.changes]
    return [*lines, *([history.note] if history.note else [])]


def transition(change: LimitChange) -> str:
    return f"{change.old} -> {change.new}"


def check_key(key: str | None) -> None:
    """Refuse a key medops has no setting for: a typo, which an empty history would only hide."""
    from dataclasses import fields

    from medops.core.errors import ConfigError
    from medops.core.settings.config import Settings

    if key is not None and key not in {f.name for f in fields(Settings)}:
        raise ConfigError(f"--key {key} is not a setting this medops knows; `medops config show` lists them")


def json_records(history: LimitChangeHistory) -> list[dict[str, Any]]:
    """The changes as JSON Lines records, newest first, each time both as epoch seconds and as local ISO 8601."""
    return [{"at": c.at, "at_local": local_time(c.at).isoformat(timespec="seconds"), "key": c.key, "old": c.old,
             "new": c.new, "by": c.by} for c in history.changes]
