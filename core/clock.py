"""Time sources: monotonic for windows, wall for day boundaries and display.

Everything that measures time takes a `Clock`, so tests can drive a `FakeClock`
and no logic calls `time.time()` or `datetime.now()` directly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic and wall time, and a way to wait on it."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    # The time functions themselves, not wrappers: hot paths (quota admission) read them per call.
    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when a test calls `advance`.

    Sleepers wake in deadline order as `advance` passes their deadlines, and the
    event loop gets a chance to run them before time moves further.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline passes."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
            await settle()
        self._now = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let ready tasks run (a few event-loop turns) without moving any clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def format_wall(seconds: float) -> str:
    """A wall-clock time as ISO 8601 UTC, for display and JSON."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


def wall_text(wall: float, now: float) -> str:
    """A wall time as an operator reads it, local: "14:02:11" today, "tomorrow 14:02:11", else "12-08 14:02:11".
    A day window's end is a day away: a bare "held until 14:02:11" read as minutes from now (or already past)."""
    moment, today = datetime.fromtimestamp(wall).astimezone(), datetime.fromtimestamp(now).astimezone()
    days = (moment.date() - today.date()).days
    if days == 0:
        return f"{moment:%H:%M:%S}"
    return f"tomorrow {moment:%H:%M:%S}" if days == 1 else f"{moment:%m-%d %H:%M:%S}"
