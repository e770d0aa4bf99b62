"""`medops config show`: the settings in force and where each came from."""

from __future__ import annotations

import argparse
from typing import Any

from medops.console.commands.common import load


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="show the settings in force")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print every setting, its value and its source")
    show.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    from medops.core.settings.config import describe

    loaded = load(args)
    print(f"# config file: {loaded.config_file or 'none'}")
    rows = describe(loaded)
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {value:<24}  {source}")
    return 0
