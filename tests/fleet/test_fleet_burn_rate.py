"""A fleet member's burn rate is the organisation's while the store answers, said "(fleet)", and its own
windows' otherwise: the pace read from the store's day buckets by a member (real redis-server, members on a
fake clock), projected at a fake clock's now onto the Overview's line, `medops status` and the alert."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from rich.text import Text

from medops.console.commands.status import burn_lines
from medops.console.panes.vitals import burn_line
from medops.core.burn_rate import HOUR, burn_rates, fleet_paced
from medops.core.clock import FakeClock
from medops.core.fleet.pace import PACE_KEPT
from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits, Settings
from medops.core.snapshot import CoreSnapshot, ModelQuota, QuotaSnapshot, StoreSnapshot, WindowUsage
from medops.core.watch.alerts import AlertEngine, BurnRateRule
from tests.helpers.fleet_helpers import MODEL, admit, fleet_of, member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=100, rpd=1_000, tpm=100_000, tpd=1_000_000)
UP = StoreSnapshot("redis://store", "vm-1", "up", None, 0.0, 0.0, 2, 2, 0.0, 0)
OWN = (WindowUsage("rpd", 900, 1_000, 40_000.0, last_hour=5), WindowUsage("tpd", 1_000, 1_000_000, 40_000.0,
                                                                           last_hour=100))


def quota(store: StoreSnapshot | None, windows: tuple[WindowUsage, ...] = OWN) -> QuotaSnapshot:
    return QuotaSnapshot((ModelQuota(MODEL, windows),), MODEL, store)


def test_on_a_fleet_whose_store_answers_the_pace_is_the_organisations_and_said_so(clock: FakeClock) -> None:
    now = clock.wall()
    paced = fleet_paced(quota(UP), {MODEL: (50, 9_000)})
    rpd = next(r for r in burn_rates(paced, now) if r.window == "rpd")
    assert (rpd.per_hour, rpd.fleet, rpd.runs_out_first) == (50, True, True)
    assert rpd.runs_out_at == pytest.approx(now + 100 / 50 * HOUR)  # the fleet's 100 left at the fleet's pace
    snapshot = CoreSnapshot(taken_at=now, uptime=0.0, quota=paced)
    assert Text.from_markup(burn_line(snapshot)).plain.startswith("burn (fleet) rpd 50/h out at ")
    assert burn_lines(snapshot)[0].startswith(f"burn       {MODEL} rpd (fleet): 50 in the last hour, 100 left; ")


def test_cut_off_from_the_store_a_member_projects_its_own_windows(clock: FakeClock) -> None:
    down = replace(UP, state="down", down_since=clock.wall())
    assert fleet_paced(quota(down), {MODEL: (50, 9_000)}) == quota(down)
    rpd = next(r for r in burn_rates(quota(down), clock.wall()) if r.window == "rpd")
    assert (rpd.per_hour, rpd.fleet) == (5, False)  # its own records' pace
    assert burn_line(CoreSnapshot(taken_at=clock.wall(), uptime=0.0, quota=quota(down))).startswith("burn rpd")
    alone = next(r for r in burn_rates(quota(None), clock.wall()) if r.window == "rpd")
    assert not alone.fleet  # no fleet at all


async def test_the_alert_says_the_fleet_runs_out(clock: FakeClock) -> None:
    engine = AlertEngine(clock, [BurnRateRule()])
    settings = Settings(alert_open_after=5.0, alert_repeat_interval=60.0)
    paced = fleet_paced(quota(UP), {MODEL: (50, 9_000)})
    assert engine.evaluate(CoreSnapshot(taken_at=clock.wall(), uptime=0.0, quota=paced), settings) == []
    await clock.advance(5.0)
    announced = engine.evaluate(CoreSnapshot(taken_at=clock.wall(), uptime=0.0, quota=paced), settings)
    assert [a.name for a in announced] == [f"burn_rate:{MODEL}:rpd"]
    assert announced[0].message.startswith(f"{MODEL} rpd (fleet) out at ")


async def test_a_member_reads_the_fleets_pace_from_the_store_and_projects_it(redis_server: RedisServer) -> None:
    clock = FakeClock()
    async with member(redis_server.url, LIMITS, "a", clock=clock) as a, \
            member(redis_server.url, LIMITS, "b", clock=clock) as b:
        for quota_of, used in ((a, 40), (b, 60), (b, 5)):
            reservation = await admit(quota_of, 100)
            assert isinstance(reservation, Reservation)
            quota_of.settle(reservation, used)
        for quota_of in (a, b):
            await asyncio.wait_for(fleet_of(quota_of).flush(), timeout=10)
        fleet = fleet_of(a)
        assert fleet.pace() == {}  # not read yet: no pace known, none made up
        await fleet.heartbeat()
        await fleet.read_pace()
        assert fleet.pace() == {MODEL: (3, 105)}  # both members' hour, not a's own (1, 40)
        own = QuotaSnapshot((a.snapshot(),), MODEL, fleet.snapshot())
        assert next(w for w in own.models[0].windows if w.name == "rpd").last_hour is None  # the store's view: none
        rates = {r.window: r for r in burn_rates(fleet_paced(own, fleet.pace()), clock.wall())}
        assert (rates["rpd"].per_hour, rates["tpd"].per_hour, rates["rpd"].fleet) == (3, 105, True)
        assert rates["rpd"].remaining == 1_000 - 3
        await clock.advance(PACE_KEPT + 1.0)
        assert fleet.pace() == {}  # a reading too old is not shown as the fleet's pace
