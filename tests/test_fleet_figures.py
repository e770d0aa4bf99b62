"""The figures an operator reads (`medops fleet`, the Fleet tab, --attach) on a real store: the members' use is
the sum of their parts, and what is held without being anyone's use is shown as held, with its end."""

from __future__ import annotations

import asyncio

from medops.core.fleet.quota import FleetQuota
from medops.core.fleet.view import FleetWindow, read_fleet
from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits
from medops.core.snapshot import CoreSnapshot, QuotaSnapshot
from tests.fleet_helpers import MODEL, admit, fleet_of, member
from tests.redis_server import RedisServer

LIMITS = ModelLimits(rpm=10, rpd=1_000, tpm=100_000, tpd=1_000_000)


async def _publish(*quotas: FleetQuota) -> None:
    """Each member publishes a snapshot naming its model (the view reads only the store's figures)."""
    for quota in quotas:
        snapshot = CoreSnapshot(taken_at=0.0, uptime=0.0,
                                quota=QuotaSnapshot((quota.snapshot(),), default_model=quota.model))
        fleet_of(quota).snapshot_source = lambda s=snapshot: s  # type: ignore[misc]
        await fleet_of(quota).publish()


async def _window(url: str, name: str) -> FleetWindow:
    view = await read_fleet(url, "test")
    return next(w for w in view.windows if w.model == MODEL and w.name == name)


async def test_the_members_use_is_the_sum_of_their_parts_and_no_part_exceeds_it(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a") as a, member(redis_server.url, LIMITS, "b") as b:
        for quota, tokens in ((a, 10), (b, 20), (a, 30)):
            reservation = await admit(quota, tokens)
            assert isinstance(reservation, Reservation)
            quota.settle(reservation, tokens // 2)
        assert isinstance(await admit(b, 40), Reservation)  # one still in flight
        for quota in (a, b):
            await asyncio.wait_for(fleet_of(quota).flush(), timeout=10)
        await _publish(a, b)
        for name, parts in (("rpm", {"a": 2, "b": 2}), ("tpm", {"a": 5 + 15, "b": 10 + 40})):
            window = await _window(redis_server.url, name)
            assert dict(window.parts) == parts
            assert window.used == sum(parts.values()) and window.held == 0


async def test_after_an_empty_restart_the_held_minute_reads_as_held_with_its_end(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a", seed_grace=0.5) as a, \
            member(redis_server.url, LIMITS, "b", seed_grace=0.5) as b:
        for quota in (a, b):
            reservation = await admit(quota, 10)
            assert isinstance(reservation, Reservation)
            quota.settle(reservation, 7)
            await asyncio.wait_for(fleet_of(quota).flush(), timeout=10)
        for quota in (a, b, a, b):
            await fleet_of(quota).heartbeat()
        redis_server.restart_empty()
        for quota in (a, a, b, b):  # the old connections fail once; then each writes its day back
            await fleet_of(quota).heartbeat()
        await _publish(a, b)
        rpm = await _window(redis_server.url, "rpm")
        # "rpm 10/10" with parts summing to 2 read as members' use; now: 2 used, the rest held, until when.
        assert (rpm.used, dict(rpm.parts), rpm.limit) == (2, {"a": 1, "b": 1}, 10)
        assert rpm.held == 8 and rpm.held_why == "store restarted"
        client_time = (await read_fleet(redis_server.url, "test")).store_time
        assert 60 <= rpm.held_until - client_time <= 60 + 600  # a minute and an attempt after the epoch began
        assert "8 held until " in rpm.figures() and rpm.figures().endswith("(store restarted)")
