"""The console's way to the fleet's store: read the members and their history, send them commands; no core needed.

Each is built from the settings (store_url, the namespace of the Groq
organisation, MEDOPS_STORE_PASSWORD); the store's modules load on first use, on
a thread, so a console without a store never imports them.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medops.core.settings.config import Settings

if TYPE_CHECKING:
    from medops.core.fleet.commands import Acknowledgement, Command
    from medops.core.fleet.history import FleetAlerts, FleetRequests, StreamHeads
    from medops.core.fleet.view import FleetView

FleetReader = Callable[[], Awaitable["FleetView"]]
FleetIssuer = Callable[[str, str], Awaitable[tuple["Command", list["Acknowledgement"]]]]
# (key, value, target): set a limit on a member or "*", and collect the answers
FleetLimitSetter = Callable[[str, str, str], Awaitable[tuple["Command", list["Acknowledgement"]]]]


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


def store_limit_setter(settings: Settings) -> FleetLimitSetter | None:
    """Sends `set_limit` KEY VALUE to a member or "*" and collects the answers; None without a store."""
    if not settings.store_url:
        return None

    async def send(key: str, value: str, target: str) -> tuple[Command, list[Acknowledgement]]:
        commands = await asyncio.to_thread(importlib.import_module, "medops.core.fleet.commands")
        result: tuple[Command, list[Acknowledgement]] = await commands.issue(
            settings.store_url, await _namespace(settings), "set_limit", target, key, value,
            password=os.environ.get("MEDOPS_STORE_PASSWORD"))
        return result

    return send


@dataclass(frozen=True)
class FleetHistory:
    """Reads the fleet's streams of finished requests and alert announcements (see core/fleet/history.py)."""

    settings: Settings

    async def requests(self, before: str | None, limit: int, model: str | None,
                       agent: str | None) -> FleetRequests:
        history = await self._module()
        result: FleetRequests = await history.read_requests(
            self.settings.store_url, await _namespace(self.settings), os.environ.get("MEDOPS_STORE_PASSWORD"),
            before, limit, model, agent)
        return result

    async def alerts(self, before: str | None, limit: int) -> FleetAlerts:
        history = await self._module()
        result: FleetAlerts = await history.read_alerts(
            self.settings.store_url, await _namespace(self.settings), os.environ.get("MEDOPS_STORE_PASSWORD"),
            before, limit)
        return result

    async def heads(self) -> StreamHeads:
        history = await self._module()
        result: StreamHeads = await history.read_heads(
            self.settings.store_url, await _namespace(self.settings), os.environ.get("MEDOPS_STORE_PASSWORD"))
        return result

    @staticmethod
    async def _module() -> Any:
        return await asyncio.to_thread(importlib.import_module, "medops.core.fleet.history")


def store_history(settings: Settings) -> FleetHistory | None:
    """The fleet's history in `settings.store_url`, or None when no store is set (the ledger's is shown)."""
    return FleetHistory(settings) if settings.store_url else None
