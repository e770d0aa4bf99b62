"""Fleet members in one test process: each its own store connection, instance id and quota (or a whole real
core), and what they publish to the fleet's streams."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from medops.core.clock import Clock, FakeClock, SystemClock
from medops.core.fleet.membership import Fleet
from medops.core.fleet.quota import FleetQuota
from medops.core.fleet.store import QuotaStore
from medops.core.groq.quota import Reservation
from medops.core.ledger.records import RequestRecord
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import Alert
from tests.helpers.console_data import busy_snapshot

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


@asynccontextmanager
async def fleet_cores(url: str, tmp_path: Path, knowledge: Path, names: tuple[str, ...]) -> AsyncIterator[
        list[ResourceCore]]:
    """Real cores joined to the store as workers, each with its own data folder, stopped on leaving."""
    cores = []
    for name in names:
        where = Locations(config_dir=tmp_path / f"{name}-config", data_dir=tmp_path / name)
        where.ensure()
        shutil.copyfile(knowledge, where.knowledge_db)
        cores.append(ResourceCore(Settings(store_url=url, store_namespace="test", groq_concurrent=4), where,
                                  role="worker"))
    try:
        for core in cores:
            await core.start()
        yield cores
    finally:
        for core in cores:
            await core.stop()


def request(n: int, model: str = "m-small", agent: str = "triage") -> RequestRecord:
    return RequestRecord(at_wall=1_000.0 + n, agent=agent, priority="high", model=model, prompt_tokens=n,
                         completion_tokens=2, latency=0.5, queue_wait=0.01, outcome="ok", status=200, attempts=1,
                         request_id=f"req-{n}")


async def publish(fleet: Fleet, records: list[RequestRecord], alerts: tuple[Alert, ...] = ()) -> None:
    fleet.snapshot_source = busy_snapshot
    for record in records:
        fleet.records.record_request(record)
    for alert in alerts:
        fleet.records.record_alert(alert)
    await fleet.publish()
