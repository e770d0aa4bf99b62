"""What the gateway has served, per key, for its snapshot section (never bodies, never keys)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from medops.core.snapshot import GatewayKeyStats, GatewaySnapshot
from medops.core.waits import percentile

WAITS_KEPT = 256  # recent queue waits per key, for its p50
# Beyond its batching window (batch_interval; none for critical requests), a wait longer than an admission's
# own round trip means the request stood in the queue, for quota or a slot.
QUEUED_AFTER = 0.05


@dataclass
class _KeyFigures:
    agent: str
    requests: int = 0
    in_flight: int = 0
    queued: int = 0
    refused_at_deadline: int = 0
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=WAITS_KEPT))


class GatewayStats:
    """Counts kept by the server as requests come and go; `snapshot()` is the section the core publishes."""

    def __init__(self) -> None:
        self.url = ""
        self.clients: Callable[[], int] = lambda: 0
        self.refused_connections: Callable[[], int] = lambda: 0
        self.requests = 0
        self.unauthorized = 0
        self.in_flight = 0
        self._keys: dict[str, _KeyFigures] = {}

    def started(self, name: str, agent: str) -> None:
        figures = self._keys.setdefault(name, _KeyFigures(agent))
        figures.agent = agent
        figures.requests += 1
        figures.in_flight += 1
        self.requests += 1
        self.in_flight += 1

    def in_flight_of(self, name: str) -> int:
        figures = self._keys.get(name)
        return figures.in_flight if figures is not None else 0

    def waited(self, name: str, seconds: float, gathered: float) -> None:
        """A request of key `name` was sent `seconds` after it came; `gathered` of them it spent in its batch."""
        figures = self._keys[name]
        figures.waits.append(seconds)
        if seconds - gathered >= QUEUED_AFTER:
            figures.queued += 1

    def refused_at_deadline(self, name: str) -> None:
        self._keys[name].refused_at_deadline += 1

    def ended(self, name: str) -> None:
        self._keys[name].in_flight -= 1
        self.in_flight -= 1

    def snapshot(self) -> GatewaySnapshot:
        rows = tuple(GatewayKeyStats(name, f.agent, f.requests, f.in_flight, f.queued, f.refused_at_deadline,
                                     percentile(sorted(f.waits), 50)) for name, f in sorted(self._keys.items()))
        return GatewaySnapshot(self.url, self.clients(), self.in_flight, self.requests, self.unauthorized,
                               self.refused_connections(), rows)
