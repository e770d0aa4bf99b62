"""`medops` with no subcommand: the full-screen console, over a core of its own or attached to the fleet."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from medops.console.commands.common import load
from medops.core.settings.paths import Locations, locate

if TYPE_CHECKING:
    from medops.console.app import MedopsApp
    from medops.core.fleet.attached import AttachedFleet


def run_console(args: argparse.Namespace) -> int:
    loaded = load(args)
    if args.attach:
        from medops.core.fleet.attached import AttachedFleet

        fleet = AttachedFleet(loaded.settings)
        # The store is read once first: a missing or unreachable one ends here (exit 2) with what to set or
        # what failed, before the screen is taken.
        asyncio.run(fleet.probe())
        app = attached_app(fleet, locate(), theme=args.theme, read_only=args.read_only)
    else:
        from medops.console.app import MedopsApp  # Textual loads only when the console opens

        app = MedopsApp(loaded.settings, locate(), theme=args.theme, read_only=args.read_only)
    app.run(mouse=not args.no_mouse)
    return app.return_code or 0


def attached_app(fleet: AttachedFleet, locations: Locations, *, theme: str | None = None,
                 read_only: bool = False) -> MedopsApp:
    """`medops --attach`: the console over `fleet`, with no core of its own; the members' answers notified."""
    from medops.console.app import MedopsApp

    app = MedopsApp(fleet.settings, locations, theme=theme, core=fleet, read_only=read_only,
                    fleet_reader=fleet.fleet_view)  # one reading of the store serves the Overview and the Fleet tab
    fleet.on_answers = app.fleet_answered
    return app
