"""The console's way to the fleet's store: read the members, send them commands; no core needed.

Both are built from the settings (store_url, the namespace of the Groq
organisation, MEDOPS_STORE_PASSWORD); the store's modules load on first use, on
a thread, so a console without a store never imports them.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from medops.core.settings.config import Settings

if TYPE_CHECKING:
    from medops.core.fleet.commands import Acknowledgement, Command
    from medops.core.fleet.view import FleetView

FleetReader = Callable[[], Awaitable["FleetView"]]
FleetIssuer = Callable[[str, str], Awaitable[tuple["Command", list["Acknowledgement"]]]]


async def _namespace(settings: Settings) -> str:
    membership = await asyncio.to_thread(importlib.import_module, "medops.core.fleet.membership")
    return str(membership.fleet_namespace(settings, os.environ))


def store_reader(settings: Settings) -> FleetReader | None:
    """A reader of the fleet in `settings.store_url`, or None when no store is set."""
    if not settings.store_url:
        return None

    async def read() -> FleetView:
        view = await asyncio.to_thread(importlib.import_module, "medops.core.fleet.view")
        result: FleetView = await view.read_fleet(settings.store_url, await _namespace(settings),
                                                  os.environ.get("MEDOPS_STORE_PASSWORD"))
        return result

    return read


def store_issuer(settings: Settings) -> FleetIssuer | None:
    """Sends `op` ("pause", "resume") to a member or "*" and collects the answers; None without a store."""
    if not settings.store_url:
        return None

    async def send(op: str, target: str) -> tuple[Command, list[Acknowledgement]]:
        commands = await asyncio.to_thread(importlib.import_module, "medops.core.fleet.commands")
        result: tuple[Command, list[Acknowledgement]] = await commands.issue(
            settings.store_url, await _namespace(settings), op, target,
            password=os.environ.get("MEDOPS_STORE_PASSWORD"))
        return result

    return send
