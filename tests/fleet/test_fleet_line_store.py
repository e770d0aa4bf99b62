"""Two real members on a real redis-server: one member's request the store puts off behind the other's critical
ones says so in its row, as every reader of the fleet sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from medops.console.commands.requests import listing
from medops.core.clock import SystemClock
from medops.core.fleet.attached import fleet_snapshot
from medops.core.fleet.membership import Fleet
from medops.core.fleet.quota import make_fleet_quota
from medops.core.fleet.store import QuotaStore
from medops.core.fleet.view import FleetView, read_fleet
from medops.core.groq.quota import QuotaBook
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.groq.scheduler import Scheduler
from medops.core.settings.config import ModelLimits, Settings
from medops.core.snapshot import CoreSnapshot, RequestRow, StoreSnapshot
from tests.helpers.redis_server import RedisServer

MODEL = "test-model"
LIMITS = ModelLimits(rpm=1_000, rpd=100_000, tpm=10_000, tpd=10_000_000)
NAMESPACE = "test"


class Unanswered:
    """A Groq that never answers: what is sent stays in flight, holding its tokens in the fleet's minute."""

    async def send(self, request: PromptRequest, timeout: float, attempt: object = None) -> object:  # noqa: ASYNC109
        await asyncio.Event().wait()
        raise AssertionError("never answered")


@asynccontextmanager
async def core(url: str, name: str) -> AsyncIterator[Scheduler]:
    """A member as a core is one: its quota through the store, its scheduler, its snapshot published each beat."""
    clock = SystemClock()
    settings = Settings(models={MODEL: LIMITS}, default_model=MODEL, batch_interval=0.0, groq_concurrent=10,
                        starvation_bound=600.0)
    fleet = Fleet(QuotaStore(url, NAMESPACE, clock), name, f'{{"host":"{name}"}}', clock, 180.0, 600.0, 0.0)
    quotas = QuotaBook(settings, clock, build=make_fleet_quota(fleet), describe_store=fleet.snapshot)
    scheduler = Scheduler(settings, quotas, Unanswered(), clock)  # type: ignore[arg-type]
    fleet.snapshot_source = lambda: CoreSnapshot(clock.wall(), 0.0, quota=quotas.snapshot(),
                                                 scheduler=scheduler.snapshot())
    await fleet.start()
    await scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()
        await fleet.stop()


def prompt(request_id: str, priority: Priority, tokens: int) -> PromptRequest:
    return PromptRequest("p", "triage", priority=priority, request_id=request_id, max_completion_tokens=tokens,
                         model=MODEL)


async def read_when(url: str, member: str, request_id: str, says: str,
                    within: float = 20.0) -> tuple[FleetView, RequestRow]:
    """A reading of the fleet once the member's row for the request, as the member view and `medops requests`
    show it, says `says` (members beat each second; the put-off request asks the store again every 2 s at the
    latest); with that row."""
    ends = time.monotonic() + within
    last: RequestRow | None = None
    while time.monotonic() < ends:
        view = await read_fleet(url, NAMESPACE)
        published = view.in_line(member)
        last = next((r for r in published.scheduler.requests if r.request_id == request_id), None) \
            if published is not None else None
        if last is not None and says in last.reason:
            return view, last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{request_id} never said {says!r}; last: {last}")


async def test_a_request_put_off_behind_another_members_critical_ones_says_whose_and_how_many(
        redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with core(redis_server.url, "vm-2") as ward, core(redis_server.url, "vm-1") as lab:
        tasks = [asyncio.create_task(ward.submit(prompt("big", Priority.NORMAL, 6_000)))]
        await asyncio.sleep(0.5)  # in flight at "Groq": 6,000 of the minute's 10,000 tokens held
        # three critical ones that do not fit: the first waits in the store's line, the others behind it
        tasks += [asyncio.create_task(ward.submit(prompt(f"crit-{i}", Priority.CRITICAL, 6_000))) for i in range(3)]
        await asyncio.sleep(0.5)
        # this one fits the fleet's windows by itself, but the store lets vm-2's critical ones go first
        tasks.append(asyncio.create_task(lab.submit(prompt("small", Priority.NORMAL, 1_000))))
        view, row = await read_when(redis_server.url, "vm-1", "small", "behind")
        assert row.deferred
        assert row.reason.startswith("behind 3 critical at vm-2 (fleet); the fleet has room in ")
        # the same words on a console attached to the fleet (its Requests tab) and in `medops requests`
        attached = fleet_snapshot(view, StoreSnapshot("redis://store", "", "up", None, 0.0, 0.0, 2, 0, 0.0, 0,
                                                      attached=True))
        merged = next(r for r in attached.scheduler.requests if r.request_id == "small")
        assert (merged.member, merged.reason) == ("vm-1", row.reason)
        listing(view, as_json=False)
        printed = next(line for line in capsys.readouterr().out.splitlines() if " small " in line)
        assert printed.startswith("vm-1 ") and printed.endswith(row.reason)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
