"""The medops console: runs the core in Textual's event loop and shows its snapshot."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.widgets import Footer, Header, Static

from core.config import Settings
from core.paths import Locations
from core.resource_core import ResourceCore
from core.snapshot import CoreSnapshot


class StatusLine(Static):
    """Endpoint, refresh rate, live or paused."""

    def show(self, snapshot: CoreSnapshot, interval: float) -> None:
        endpoint = snapshot.endpoint.kind if snapshot.endpoint.kind != "none" else "no endpoint yet"
        state = "paused" if snapshot.paused else "live"
        self.update(f"endpoint: {endpoint} | refresh {interval:g}s | {state} | up {snapshot.uptime:,.0f}s")


class MedopsApp(App[int]):
    """Full-screen console over a live `ResourceCore`."""

    TITLE = "medops"
    BINDINGS: ClassVar[list[BindingType]] = [("q", "quit", "Quit")]

    def __init__(self, settings: Settings, locations: Locations, theme: str | None = None) -> None:
        super().__init__()
        self.core = ResourceCore(settings, locations)
        self.refresh_interval = settings.refresh_interval

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusLine(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        await self.core.start()
        self.set_interval(self.refresh_interval, self.refresh_snapshot)
        self.refresh_snapshot()

    def refresh_snapshot(self) -> None:
        self.query_one(StatusLine).show(self.core.snapshot(), self.refresh_interval)

    async def on_unmount(self) -> None:
        await self.core.stop()
