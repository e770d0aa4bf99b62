"""Fleet members in one test process: each its own store connection, instance id and quota."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from medops.core.clock import Clock, FakeClock, SystemClock
from medops.core.fleet.membership import Fleet
from medops.core.fleet.quota import FleetQuota
from medops.core.fleet.store import QuotaStore
from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits

MODEL = "test-model"


@asynccontextmanager
async def member(url: str, limits: ModelLimits, name: str, *, model: str = MODEL, namespace: str = "test",
                 flight_bound: float = 180.0,
                 starvation_bound: float = 30.0, budget: float = 1.0,
                 seed_grace: float = 0.0, clock: Clock | None = None) -> AsyncIterator[FleetQuota]:
    """A started fleet member with one model's quota; stopped (its settles sent) on leaving.

    `seed_grace` 0: a test's fresh store does not wait for earlier members (there were none). `budget` 1 s: a
    stall of a busy test machine is not taken for the store going away (the freeze tests set 0.25)."""
    clock = clock or SystemClock()
    store = QuotaStore(url, namespace, clock, budget=budget)
    fleet = Fleet(store, name, f'{{"instance":"{name}"}}', clock, flight_bound, starvation_bound, seed_grace)
    quota = FleetQuota(model, limits, clock, fleet)
    await fleet.start()
    if isinstance(clock, FakeClock):
        fleet._tasks[0].cancel()  # on a fake clock the test beats by hand
    try:
        yield quota
    finally:
        await fleet.stop()


async def admit(quota: FleetQuota, tokens: int, priority: int = 0, waited: float = 0.0) -> Reservation | float:
    """What the scheduler does with a head: ask its quota (the store, or the local share while it is away)."""
    return await quota.admit(tokens, priority, waited)


def fleet_of(quota: FleetQuota) -> Fleet:
    return quota._fleet
