"""`medops` with no subcommand: the full-screen console, over a core of its own or attached to the fleet."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from medops.console.commands.common import load
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations, locate

if TYPE_CHECKING:
    from medops.console.app import MedopsApp


def run_console(args: argparse.Namespace) -> int:
    loaded = load(args)
    if args.attach:
        app = attached_console(loaded.settings, locate(), theme=args.theme, read_only=args.read_only)
    else:
        from medops.console.app import MedopsApp  # Textual loads only when the console opens

        app = MedopsApp(loaded.settings, locate(), theme=args.theme, read_only=args.read_only)
    app.run(mouse=not args.no_mouse)
    return app.return_code or 0


def attached_console(settings: Settings, locations: Locations, *, theme: str | None = None,
                     read_only: bool = False) -> MedopsApp:
    """`medops --attach`: a console over the fleet's store with no core of its own.

    The store is read once first, so a missing or unreachable one ends here with a `ConfigError` saying what
    to set or what failed, before the screen is taken. The members' answers to its commands are notified."""
    from medops.console.app import MedopsApp
    from medops.core.fleet.attached import AttachedFleet

    fleet = AttachedFleet(settings)
    asyncio.run(fleet.probe())
    app = MedopsApp(settings, locations, theme=theme, core=fleet, read_only=read_only,
                    fleet_reader=fleet.fleet_view)  # one reading of the store serves the Overview and the Fleet tab
    fleet.on_answers = app.fleet_answered
    return app
