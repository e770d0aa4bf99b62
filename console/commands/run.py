"""`medops` with no subcommand: the full-screen console."""

from __future__ import annotations

import argparse

from medops.console.commands.common import load
from medops.core.settings.paths import locate


def run_console(args: argparse.Namespace) -> int:
    loaded = load(args)
    from medops.console.app import MedopsApp  # Textual loads only when the console opens

    app = MedopsApp(loaded.settings, locate(), theme=args.theme, read_only=args.read_only)
    app.run(mouse=not args.no_mouse)
    return app.return_code or 0
