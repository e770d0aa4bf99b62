"""Event-loop lag: how late a sleeper wakes compared with when it asked to.

A busy or blocked loop delays every timer; that delay is what makes the console
feel slow, so it is the first figure to look at. A probe task sleeps a short
interval on the Clock over and over and records how late each wake-up was.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass

from medops.core.clock import Clock
from medops.core.waits import percentile

PROBE_INTERVAL = 0.1  # seconds between probes: detects stalls of a tenth of a second
WINDOW_SECONDS = 10.0  # lag figures cover this recent stretch
STARTUP_GRACE = 10.0  # seconds after start whose lag is not the core's: imports, first layout, opening files


@dataclass(frozen=True)
class LoopLagStats:
    """Lag over the recent window, in milliseconds."""

    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    samples: int = 0


class LoopLagProbe:
    """Measures the lag of the event loop it runs in, continuously."""

    def __init__(self, clock: Clock, interval: float = PROBE_INTERVAL, window: float = WINDOW_SECONDS) -> None:
        self._clock = clock
        self._interval = interval
        self._window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()  # (at, lag seconds)
        self._task: asyncio.Task[None] | None = None
        self._excused_until = float("-inf")  # wake-ups up to this monotonic time are not counted
        self.excused = 0  # wake-ups left out that way (tests and the status read it)

    def start(self) -> None:
        """Start probing in the running loop; idempotent."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._probe(), name="medops-loop-lag")

    def excuse(self, seconds: float) -> None:
        """Leave out the lag of wake-ups in the next `seconds`: the loop's owner knows it is busy with its own work
        (a console laying out its screen after a resize), which is not the core stalling."""
        self._excused_until = max(self._excused_until, self._clock.monotonic() + seconds)

    async def stop(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def record(self, lag: float) -> None:
        """Add one lag observation (seconds) at the clock's current time."""
        now = self._clock.monotonic()
        if now <= self._excused_until:
            self.excused += 1
            return
        self._samples.append((now, max(0.0, lag)))
        while self._samples and self._samples[0][0] < now - self._window:
            self._samples.popleft()

    def stats(self) -> LoopLagStats:
        """p50, p99 and max lag over the recent window."""
        horizon = self._clock.monotonic() - self._window
        lags = sorted(lag for at, lag in self._samples if at >= horizon)
        if not lags:
            return LoopLagStats()
        return LoopLagStats(p50_ms=percentile(lags, 50) * 1000, p99_ms=percentile(lags, 99) * 1000,
                            max_ms=lags[-1] * 1000, samples=len(lags))

    async def _probe(self) -> None:
        while True:
            due = self._clock.monotonic() + self._interval
            await self._clock.sleep(self._interval)
            self.record(self._clock.monotonic() - due)
