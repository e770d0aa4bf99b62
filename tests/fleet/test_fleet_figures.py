"""The figures an operator reads (`medops fleet`, the Fleet tab, --attach) on a real store: the members' use is
the sum of their parts, and what is held without being anyone's use is shown as held, with its end."""

from __future__ import annotations

import asyncio
import time

from medops.core.clock import wall_text
from medops.core.fleet.quota import FleetQuota
from medops.core.fleet.view import FleetWindow, read_fleet
from medops.core.groq.quota import Reservation
from medops.core.groq.rate_headers import RateLimitHeaders
from medops.core.groq.wait_reason import quota_wait
from medops.core.settings.config import ModelLimits, Settings
from medops.core.snapshot import CoreSnapshot, QuotaSnapshot
from medops.core.watch.alerts import QuotaRule
from tests.helpers.fleet_helpers import MODEL, admit, fleet_of, member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=10, rpd=1_000, tpm=100_000, tpd=1_000_000)
ROOMY = ModelLimits(rpm=100, rpd=1_000, tpm=100_000, tpd=1_000_000)


async def _publish(*quotas: FleetQuota) -> None:
    """Each member publishes a snapshot naming its model (the view reads only the store's figures)."""
    for quota in quotas:
        snapshot = CoreSnapshot(taken_at=0.0, uptime=0.0,
                                quota=QuotaSnapshot((quota.snapshot(),), default_model=quota.model))
        fleet_of(quota).snapshot_source = lambda s=snapshot: s  # type: ignore[misc]
        await fleet_of(quota).publish()


async def _one_in_flight_then_restarted_empty(redis_server: RedisServer, a: FleetQuota) -> None:
    """One member admits one request (left in flight) and beats, then the store restarts empty and the member
    writes its day back (the old connection fails once first)."""
    assert isinstance(await admit(a, 10), Reservation)
    await fleet_of(a).heartbeat()
    redis_server.restart_empty()
    for _ in range(3):
        await fleet_of(a).heartbeat()


async def _one_each_then_restarted_empty(redis_server: RedisServer, a: FleetQuota, b: FleetQuota) -> None:
    """Each member settles one request (7 tokens), both beat twice, then the store restarts empty and both write
    their day back (the old connections fail once first)."""
    for quota in (a, b):
        reservation = await admit(quota, 10)
        assert isinstance(reservation, Reservation)
        quota.settle(reservation, 7)
        await asyncio.wait_for(fleet_of(quota).flush(), timeout=10)
    for quota in (a, b, a, b):
        await fleet_of(quota).heartbeat()
    redis_server.restart_empty()
    for quota in (a, a, b, b):
        await fleet_of(quota).heartbeat()


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
        await _one_each_then_restarted_empty(redis_server, a, b)
        await _publish(a, b)
        rpm = await _window(redis_server.url, "rpm")
        # "rpm 10/10" with parts summing to 2 read as members' use; now: 2 used, the rest held, until when.
        assert (rpm.used, dict(rpm.parts), rpm.limit) == (2, {"a": 1, "b": 1}, 10)
        assert rpm.held == 8 and rpm.held_why == "store restarted"
        client_time = (await read_fleet(redis_server.url, "test")).store_time
        assert 60 <= rpm.held_until - client_time <= 60 + 600  # a minute and an attempt after the epoch began
        assert "8 held until " in rpm.figures() and rpm.figures().endswith("(store restarted)")


async def test_during_a_freeze_a_model_nobody_used_holds_nothing_and_a_used_one_reads_as_held(
        redis_server: RedisServer) -> None:
    # "rpm 60/15" for a model never used: the local share counted the whole minute for the others, as use.
    limits = ModelLimits(rpm=60, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "a", budget=0.25) as a, \
            member(redis_server.url, limits, "b", budget=0.25) as b:
        unused = FleetQuota("never-used", limits, fleet_of(a)._clock, fleet_of(a))
        reservation = await admit(a, 10)
        assert isinstance(reservation, Reservation)
        for quota in (a, b, a, b):
            await fleet_of(quota).heartbeat()
        redis_server.freeze()
        try:
            assert isinstance(await admit(a, 10), float)  # cut off: a decides on its share
            assert a.deciding == "local share"
            idle = unused.snapshot().windows
            used = a.snapshot().windows
        finally:
            redis_server.thaw()
    assert [(w.used, w.held) for w in idle] == [(0, 0)] * 4 and idle[0].limit == 30
    assert (used[0].used, used[0].own, used[0].held_why) == (1, 1, "store unreachable")
    assert used[0].held == 60 and used[0].held_until > 0  # the others' minute, held until it has surely left


async def test_an_unused_models_day_carries_nothing_over_an_empty_restart(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a", seed_grace=0.5) as a:
        unused = FleetQuota("never-used", LIMITS, fleet_of(a)._clock, fleet_of(a))
        assert isinstance(await admit(a, 10), Reservation)
        await fleet_of(a).heartbeat()
        await fleet_of(a).heartbeat()
        redis_server.restart_empty()
        for _ in range(3):
            await fleet_of(a).heartbeat()
        idle = unused.snapshot().windows
    assert (idle[1].used, idle[3].used) == (0, 0)  # not a minute's limit for a day
    assert (idle[0].used, idle[0].held) == (0, 0)  # nor its minute held


async def test_a_members_own_view_after_an_empty_restart_reads_the_hold_apart_from_use(
        redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a", seed_grace=0.5) as a:
        await _one_in_flight_then_restarted_empty(redis_server, a)
        rpm = a.snapshot().windows[0]
    assert (rpm.used, rpm.own, rpm.held, rpm.limit) == (1, 1, 9, 10)  # not "rpm 10/10"


async def test_an_empty_restart_raises_one_alert_that_windows_are_held_not_one_per_window(
        redis_server: RedisServer) -> None:
    # 52 quota_low alerts opened after an empty restart: one per model, window and member.
    async with member(redis_server.url, LIMITS, "a", seed_grace=0.5) as a:
        other = FleetQuota("other-model", LIMITS, fleet_of(a)._clock, fleet_of(a))
        for quota in (a, other):
            assert isinstance(await admit(quota, 10), Reservation)
        await fleet_of(a).heartbeat()
        redis_server.restart_empty()
        for _ in range(3):
            await fleet_of(a).heartbeat()
        snapshot = CoreSnapshot(taken_at=0.0, uptime=0.0, quota=QuotaSnapshot((a.snapshot(), other.snapshot()),
                                                                              default_model=MODEL))
    conditions = list(QuotaRule().check(snapshot, Settings()))
    assert [c.key for c in conditions] == ["quota_held"]
    assert "restarted empty: 4 windows of 2 models held until " in conditions[0].message


async def test_after_an_empty_restart_the_day_held_counts_the_parts_of_members_that_left_or_died(
        redis_server: RedisServer) -> None:
    # The trial: "rpd 155" before an empty restart read "rpd 9 + 30 held until 19:46:10" after it. The reader
    # looked up carried parts only for the members listed now, and the old store's list is gone with it.
    async with member(redis_server.url, ROOMY, "a", seed_grace=0.5) as a:
        async with member(redis_server.url, ROOMY, "b", seed_grace=0.5) as b:
            await _use(b, 20)  # then b leaves cleanly
        async with member(redis_server.url, ROOMY, "c", seed_grace=0.5) as c:
            await _use(c, 30)
            for task in fleet_of(c)._tasks:
                task.cancel()  # c dies: no beat, no leaving, never writes its day back
            await _use(a, 9)
            for _ in range(3):
                await fleet_of(a).heartbeat()
            redis_server.restart_empty()
            for _ in range(4):
                await fleet_of(a).heartbeat()
            await _publish(a)
            rpd = await _window(redis_server.url, "rpd")
            own = a.snapshot().windows[1]
    # b's 20 and c's 30 as last seen, and a minute's limit (100) for what nobody saw: held, not a's use.
    assert (rpd.used, dict(rpd.parts), rpd.held, rpd.held_why) == (9, {"a": 9}, 150, "store restarted")
    assert (own.used, own.held) == (9, 150)  # the member's own view reads the same
    assert " held until tomorrow " in rpd.figures() or rpd.held_until - time.time() < 3600


async def _use(quota: FleetQuota, requests: int) -> None:
    for _ in range(requests):
        reservation = await admit(quota, 10)
        assert isinstance(reservation, Reservation)
        quota.settle(reservation, 5)
    await asyncio.wait_for(fleet_of(quota).flush(), timeout=10)


async def test_forgetting_a_member_that_left_keeps_its_use_in_the_window_as_unlisted(
        redis_server: RedisServer) -> None:
    # A trial: rpd 99 (w1 98, an ask 1) read 98 after `medops fleet forget --left`, while admission still
    # counted 99. The remainder is a part of its own, so the window's use is what the store counts.
    from medops.core.fleet.forget import forget
    from medops.core.fleet.view import UNLISTED

    async with member(redis_server.url, ROOMY, "a") as a:
        async with member(redis_server.url, ROOMY, "b") as b:
            await _use(b, 3)
        await _use(a, 5)
        await _publish(a)
        forgotten = await forget(redis_server.url, "test", which="left")
        assert forgotten.left == ("b",)
        rpd = await _window(redis_server.url, "rpd")
    assert (rpd.used, dict(rpd.parts)) == (8, {"a": 5, UNLISTED: 3})


async def test_the_organisations_limit_is_the_one_the_members_running_hold(redis_server: RedisServer) -> None:
    # A trial: asks run with rpm=2 left, and `medops fleet` read "rpm: 30/2" for members running with 30.
    tight = ModelLimits(rpm=2, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, ROOMY, "a") as a:
        async with member(redis_server.url, tight, "b") as b, member(redis_server.url, tight, "c") as c:
            await _use(b, 1)
            await _publish(b, c)
        await _use(a, 1)
        await _publish(a)
        rpm = await _window(redis_server.url, "rpm")
    assert rpm.limit == ROOMY.rpm


async def test_after_an_empty_restart_a_request_waits_on_the_held_minute_said_held_not_room(
        redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a", seed_grace=0.5) as a, \
            member(redis_server.url, LIMITS, "b", seed_grace=0.5) as b:
        await _one_each_then_restarted_empty(redis_server, a, b)
        assert not isinstance(await admit(a, 10), Reservation)  # 2 used + 8 held of 10: no room (unchanged)
        await fleet_of(a).heartbeat()  # the view and every member's part read together: use and held apart
        rpm = next(w for w in a.snapshot().windows if w.name == "rpm")
        assert (rpm.used, rpm.held, rpm.limit) == (2, 8, 10)
        # "the fleet has room in 1 s" for the whole hold, in a trial: the wait and the blocking words say held.
        wall = time.time()
        wait = quota_wait(a.snapshot(), 10, a.wait_time(10), wall)
        assert wait is not None and wait.reason == f"rpm held until {wall_text(rpm.held_until, wall)} (store restarted)"
        assert "rpm held until " in a.blocking(10) and "rpm full" not in a.blocking(10)


async def test_between_heartbeats_an_empty_restarts_hold_stays_held_in_the_members_own_view(
        redis_server: RedisServer) -> None:
    # "rpm 10/10 used, 0 held" in a member's own view after an admission, until the next heartbeat split it: the
    # admission's reply counts the hold with the use, and only a heartbeat names every member's part.
    async with member(redis_server.url, LIMITS, "a", seed_grace=0.5) as a:
        await _one_in_flight_then_restarted_empty(redis_server, a)
        await asyncio.sleep(0.01)  # a later moment on the store's clock than the beat's (the same ms read as it)
        assert not isinstance(await admit(a, 10), Reservation)  # the minute is held full: its reply, no beat after
        rpm, rpd = a.snapshot().windows[:2]
    assert (rpm.used, rpm.own, rpm.held, rpm.limit) == (1, 1, 9, 10)  # as the heartbeat split it
    assert (rpd.used, rpd.held) == (1, 10)  # a minute's limit held on the day for what nobody saw


async def test_between_heartbeats_what_the_member_admits_is_use_and_what_groq_counts_more_stays_held(
        redis_server: RedisServer) -> None:
    async with member(redis_server.url, ROOMY, "a") as a:
        await _use(a, 1)
        # Groq counts 10 of the day's requests where the fleet counts 1: 9 held, nobody's use.
        a.observe_headers(RateLimitHeaders(limit_requests=1_000, remaining_requests=990, reset_requests=3_600))
        await asyncio.wait_for(fleet_of(a).flush(), timeout=10)
        await fleet_of(a).heartbeat()
        assert (a.snapshot().windows[1].used, a.snapshot().windows[1].held) == (1, 9)
        await asyncio.sleep(0.01)  # a later moment on the store's clock than the beat's (the same ms read as it)
        assert isinstance(await admit(a, 10), Reservation)  # between heartbeats
        rpd = a.snapshot().windows[1]
    assert (rpd.used, rpd.own, rpd.held, rpd.counted) == (2, 2, 9, 11)  # not "11 used, 0 held"
