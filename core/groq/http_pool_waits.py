"""How long the gateway's requests wait for a connection from httpx's pool.

httpx does not report pool waits. Around each attempt the gateway opens an
`attempt()`; an httpx request hook stamps the moment the request reaches the
pool and hands httpcore a `trace` callback, whose first event (a new
connection's `connect_tcp`, or `send_request_headers` on a kept-alive one)
means the pool has given the request a connection. An attempt that ends before
that (a timeout, a cancel) counts its whole stay at the pool as its wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx

from medops.core.clock import Clock
from medops.core.waits import RecentWaits

RECENT_WAITS = 512  # enough for stable p95s, few enough to follow a change within minutes


@dataclass
class _Attempt:
    at_pool: float | None = None  # when the request reached the pool
    connected: bool = False


_current: ContextVar[_Attempt | None] = ContextVar("medops_http_attempt", default=None)


class PoolWaits:
    """Requests waiting for a connection now, and p50/p95 of recent waits (seconds)."""

    def __init__(self, clock: Clock, keep: int = RECENT_WAITS) -> None:
        self._clock = clock
        self._recent = RecentWaits(keep)
        self.waiting = 0

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Wrap one HTTP attempt (its request hook and trace find it through a context variable)."""
        attempt = _Attempt()
        token = _current.set(attempt)
        try:
            yield
        finally:
            _current.reset(token)
            if attempt.at_pool is not None and not attempt.connected:  # gave up while waiting
                self._connected(attempt)

    async def on_request(self, request: httpx.Request) -> None:
        """httpx `request` event hook: the request is about to ask the pool for a connection."""
        attempt = _current.get()
        if attempt is None:
            return  # a request made outside `attempt()` (none in medops) is not timed
        attempt.at_pool = self._clock.monotonic()
        self.waiting += 1

        async def trace(event: str, info: dict[str, Any]) -> None:
            if not attempt.connected:
                self._connected(attempt)

        request.extensions["trace"] = trace

    def percentiles(self) -> tuple[float, float]:
        """p50 and p95 of the recent waits, in seconds (0.0 before any)."""
        return self._recent.percentiles()

    def _connected(self, attempt: _Attempt) -> None:
        attempt.connected = True
        self.waiting -= 1
        self._recent.add(self._clock.monotonic() - (attempt.at_pool or 0.0))
