"""`medops config show`: the settings in force and where each came from."""

from __future__ import annotations

import argparse
from typing import Any

from medops.console.commands.common import load, reads_only


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="show the settings in force")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print every setting, its value and its source")
    show.set_defaults(handler=show_config, changes=reads_only)


def show_config(args: argparse.Namespace) -> int:
    import os

    from medops.core.groq.sender import url_in_effect
    from medops.core.settings.config import describe

    loaded = load(args)
    print(f"# config file: {loaded.config_file or 'none'}")
    rows = describe(loaded)
    # The URL prompts actually go to: without GROQ_API_KEY that is a local endpoint, whatever the setting says.
    url, why = url_in_effect(loaded.settings, os.environ)
    rows = [(key, url, why or source) if key == "groq_base_url" else (key, value, source)
            for key, value, source in rows]
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {value:<24}  {source}")
    return 0
