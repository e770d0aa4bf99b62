"""Metric samples of an earlier run, written to the ledger by its own code."""

from __future__ import annotations

from collections.abc import Sequence

from medops.core.clock import FakeClock
from medops.core.ledger.writer import Ledger
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, SystemSnapshot

HOUR = 3_600.0


def sample(at: float, cpu: float, memory: float) -> CoreSnapshot:
    return CoreSnapshot(taken_at=at, uptime=0.0, system=SystemSnapshot(cpu_percent=cpu, memory_percent=memory))


async def seeded(locations: Locations, clock: FakeClock, samples: Sequence[tuple[float, float, float]]) -> None:
    """An earlier run's metric rows (at, cpu %, memory %), written by the ledger's own code."""
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    for at, cpu, memory in samples:
        ledger.record_metrics(sample(at, cpu, memory))
    await ledger.stop()


def two_hours_with_one_spike(end: float) -> list[tuple[float, float, float]]:
    """One sample a second for the two hours before `end`: cpu 10 % and memory 40 %, save one spike of each."""
    start = end - 2 * HOUR
    return [(start + n, 97.0 if n == 1_234 else 10.0, 88.0 if n == 5_000 else 40.0) for n in range(7_200)]

