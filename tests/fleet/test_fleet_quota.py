"""The fleet's quota on a real redis-server: one set of windows for every member."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from medops.core.clock import FakeClock
from medops.core.fleet.quota import FleetQuota
from medops.core.fleet.store import StoreUnavailable
from medops.core.fleet.wire import Call
from medops.core.groq.quota import Reservation
from medops.core.groq.rate_headers import LimitExceeded
from medops.core.settings.config import ModelLimits
from tests.helpers.fleet_helpers import MODEL, admit, fleet_of, member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=5, rpd=1_000, tpm=10_000, tpd=1_000_000)


async def test_members_share_one_request_window(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a") as a, member(redis_server.url, LIMITS, "b") as b:
        answers = [await admit(q, 10) for q in (a, b, a, b, a)]
        assert all(isinstance(x, Reservation) for x in answers)
        sixth = await admit(b, 10)
        assert isinstance(sixth, float) and sixth <= 2.0  # it asks again soon, keeping its place in line
        assert [w.used for w in b.snapshot().windows][:1] == [5]


async def test_one_busy_member_may_use_the_whole_limit(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "busy") as busy, member(redis_server.url, LIMITS, "idle") as idle:
        assert all(isinstance(x, Reservation) for x in [await admit(busy, 10) for _ in range(5)])
        assert isinstance(await admit(idle, 10), float)
        assert idle.snapshot().windows[0].own == 0 and busy.snapshot().windows[0].own == 5


async def test_settle_returns_unused_tokens_to_every_member(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=100, rpd=1_000, tpm=250, tpd=1_000_000)
    async with member(redis_server.url, limits, "a") as a, member(redis_server.url, limits, "b") as b:
        first = await admit(a, 100)
        assert isinstance(first, Reservation) and isinstance(await admit(a, 100), Reservation)
        assert isinstance(await admit(b, 100), float)  # 200 of 250 held in flight
        a.settle(first, 10)  # 90 unused tokens go back
        await _settled(a)
        assert isinstance(await admit(b, 100), Reservation)


async def test_a_429_seen_by_one_member_blocks_all(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a") as a, member(redis_server.url, LIMITS, "b") as b:
        reservation = await admit(a, 10)
        assert isinstance(reservation, Reservation)
        a.observe_429(30.0, LimitExceeded("tpm", 10_000, 10_000, 10, 30.0))
        a.settle(reservation, 0)
        await _settled(a)
        assert isinstance(await admit(b, 10), float)
        assert "tpm blocked by a 429 for" in b.blocking(10)


async def test_a_498_hold_binds_every_member(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a") as a, member(redis_server.url, LIMITS, "b") as b:
        a.hold_for_capacity(20.0)
        await _settled(a)
        assert isinstance(await admit(b, 10), float)
        assert "held for" in b.blocking(10) and "after Groq was over capacity (498)" in b.blocking(10)


async def test_a_waiting_critical_request_elsewhere_goes_before_a_normal_one(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=100, rpd=1_000, tpm=100, tpd=1_000_000)
    async with member(redis_server.url, limits, "a") as a, member(redis_server.url, limits, "b") as b:
        holder = await admit(a, 100)
        assert isinstance(holder, Reservation)
        assert isinstance(await admit(a, 60, priority=0), float)  # a's normal request waits in line
        assert isinstance(await admit(b, 60, priority=2), float)  # b's critical one too
        a.settle(holder, 0)
        await _settled(a)
        assert isinstance(await admit(a, 60, priority=0, waited=1.0), float)  # room for one: b's critical goes first
        assert isinstance(await admit(b, 60, priority=2, waited=1.0), Reservation)


@pytest.mark.parametrize(("normal_waited", "goes_first"), [(6.0, "critical"), (11.0, "normal")])
async def test_a_waiting_request_is_promoted_one_class_per_starvation_bound_across_members(
        redis_server: RedisServer, normal_waited: float, goes_first: str) -> None:
    # A normal request that waited past one bound is high: a critical one elsewhere, newer, still goes first (the
    # old rule let anything past the bound outrank every class: a critical prompt waited 102 s). Past two bounds
    # it is critical too, and has waited longer: it goes first.
    limits = ModelLimits(rpm=100, rpd=1_000, tpm=100, tpd=1_000_000)
    async with member(redis_server.url, limits, "a", starvation_bound=5.0) as a, \
            member(redis_server.url, limits, "b", starvation_bound=5.0) as b:
        holder = await admit(a, 100)
        assert isinstance(holder, Reservation)
        assert isinstance(await admit(a, 60, priority=0, waited=normal_waited), float)
        assert isinstance(await admit(b, 60, priority=2, waited=0.0), float)
        a.settle(holder, 0)
        await _settled(a)
        critical = await admit(b, 60, priority=2, waited=0.5)
        normal = await admit(a, 60, priority=0, waited=normal_waited + 0.5)
        assert isinstance(critical if goes_first == "critical" else normal, Reservation)
        assert isinstance(normal if goes_first == "critical" else critical, float)


async def test_a_dead_members_reservations_end_after_the_bound(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=100, rpd=1_000, tpm=100, tpd=1_000_000)
    async with member(redis_server.url, limits, "survivor") as survivor, \
            member(redis_server.url, limits, "doomed", flight_bound=1.0) as doomed:
        assert isinstance(await admit(doomed, 60), Reservation)
        fleet_of(doomed)._tasks[0].cancel()  # its heartbeat stops, as if it were killed with SIGKILL
        fleet_of(doomed)._outbox = asyncio.Queue()
        await asyncio.sleep(1.5)
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        # Before anyone looks, the flight is still there; the survivor's next admission ends it.
        await admit(survivor, 10)
        fly = await client.hgetall(f"medops:{{test}}:q:{MODEL}:fly")
        assert list(fly.values()) == ["10 survivor"]  # the dead member's 60 tokens settled, as reserved
        await client.aclose()


async def test_a_live_members_long_flight_does_not_lapse(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=100, rpd=1_000, tpm=100, tpd=1_000_000)
    async with member(redis_server.url, limits, "slow", flight_bound=1.0) as slow, \
            member(redis_server.url, limits, "other") as other:
        assert isinstance(await admit(slow, 60), Reservation)
        await asyncio.sleep(4.0)  # longer than the bound, but its heartbeat keeps the flight alive
        assert isinstance(await admit(other, 60), float)


async def _settled(quota: FleetQuota) -> None:
    """Let the member's outbox send what it queued (settles and signals go in the background)."""
    await asyncio.wait_for(fleet_of(quota).flush(), timeout=10)


async def _beat(*quotas: FleetQuota) -> None:
    for quota in quotas:
        await fleet_of(quota).heartbeat()


async def test_store_away_members_wait_out_a_window_then_run_on_their_share_and_write_back(
        redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=30, rpd=1_000, tpm=100_000, tpd=1_000_000)
    clock = FakeClock()  # the members' own clocks; the store keeps its real one
    async with member(redis_server.url, limits, "a", clock=clock, budget=0.25) as a, \
            member(redis_server.url, limits, "b", clock=clock, budget=0.25) as b, \
            member(redis_server.url, limits, "c", clock=clock, budget=0.25) as c:
        await _beat(a, b, c, a, b, c)
        assert fleet_of(a).share_divisor == 3
        held = [await admit(a, 10) for _ in range(4)]
        assert all(isinstance(x, Reservation) for x in held)
        for reservation in held:
            a.settle(reservation, 10)
        await _settled(a)
        redis_server.freeze()
        try:
            assert isinstance(await admit(a, 10), float)  # the call times out: a decides alone from now on
            # Its view may be a beat old: the others may have filled the minute, so it counts it full.
            assert a.deciding == "local share" and "local share 1/3" in a.blocking(10)
            assert isinstance(await admit(a, 10), float)
            await clock.advance(91)  # a window plus the longest attempt: all that was sent before has left
            admitted = [x for x in [await admit(a, 10) for _ in range(12)] if isinstance(x, Reservation)]
            assert len(admitted) == 10  # 30 / 3 members, its own 4 gone with the minute
            assert a.snapshot().windows[0].limit == 10
            state = fleet_of(a).snapshot()
            # Ten admissions to write back, and the one whose answer was lost in the freeze to give back.
            assert state.state == "down" and state.down_since is not None and state.pending == 11
        finally:
            redis_server.thaw()
        await _beat(a)
        assert a.deciding == "store" and fleet_of(a).snapshot().pending == 0
        await _beat(b)
        assert b.snapshot().windows[1].used == 14  # rpd: what a admitted meanwhile is in the fleet's day


async def test_a_member_cut_off_from_the_store_keeps_its_share_reserved(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=30, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "cut") as cut, member(redis_server.url, limits, "up") as up:
        await _beat(cut, up, cut, up)
        fleet_of(cut)._tasks[0].cancel()  # its beats stop reaching the store, as in a partition
        await asyncio.sleep(3.5)
        got = [x for x in [await admit(up, 10) for _ in range(20)] if isinstance(x, Reservation)]
        assert len(got) == 15  # the cut-off member may admit 30 / 2 on its own: that room stays free
        await _beat(cut)  # it reaches the store again (nothing to write back): its share is free
        assert isinstance(await admit(up, 10), Reservation)


async def test_after_a_freeze_the_first_member_back_leaves_the_others_their_share(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=30, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "first", budget=0.25) as first, \
            member(redis_server.url, limits, "second", budget=0.25) as second:
        await _beat(first, second, first, second)
        for quota in (first, second):
            fleet_of(quota)._tasks[0].cancel()  # beats by hand only
        redis_server.freeze()
        await asyncio.sleep(3.5)  # both are late in the store's eyes: either may be admitting on its own
        redis_server.thaw()
        await _beat(first, first)
        got = [x for x in [await admit(first, 10) for _ in range(20)] if isinstance(x, Reservation)]
        assert len(got) == 15  # the second's share stays reserved until it has written back


async def test_a_store_restarted_empty_is_reseeded_before_anyone_admits(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=10, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "a", seed_grace=1.5) as a, \
            member(redis_server.url, limits, "b", seed_grace=1.5) as b:
        await _beat(a, b)
        for quota in (a, b, a):
            reservation = await admit(quota, 10)
            assert isinstance(reservation, Reservation)
            quota.settle(reservation, 7)
        await _settled(a)
        await _settled(b)
        await _beat(a, b)  # each has seen the other's part (what came after a beat is carried twice, to be safe)
        redis_server.restart_empty()
        await _beat(a, a)  # the old connection fails once; then a finds the store empty: a new epoch, a's day back
        assert isinstance(await admit(a, 10), float)  # nobody admits while members write back
        await _beat(b)
        await asyncio.sleep(1.6)
        await _beat(a, b)
        windows = a.snapshot().windows
        # Three requests, 7 tokens each, survived in the day windows, beside a minute's limit for what nobody saw
        # (members that may have left in the old store's last moments); the minute windows count as full.
        assert (windows[1].used, windows[3].used) == (3, 21)  # the members' use; the rest is held, not theirs
        assert (windows[1].held, windows[3].held) == (10, 100_000)
        assert (windows[0].used + windows[0].held, windows[2].used + windows[2].held) == (10, 100_000)
        assert isinstance(await admit(a, 10), float)


@pytest.mark.parametrize("seen_in", ["heartbeat", "admission", "nowhere"])
async def test_a_member_gone_before_the_store_was_emptied_is_carried_by_the_others(
        redis_server: RedisServer, seen_in: str) -> None:
    # A member that used most of the minute and stopped cannot write its day back into an emptied store; the
    # members that saw it carry it, or the fleet sends it all again (the drill's 429s). A heartbeat names each
    # member's part; one that came and went between two heartbeats is seen in an admission's total, or nowhere.
    limits = ModelLimits(rpm=10, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "a", seed_grace=1.5) as a:
        async with member(redis_server.url, limits, "gone", seed_grace=1.5) as gone:
            await _beat(a, gone)
            for quota in [a] + [gone] * 6 + ([a] if seen_in != "nowhere" else []):
                reservation = await admit(quota, 10)
                assert isinstance(reservation, Reservation)
                quota.settle(reservation, 7)
                await _settled(quota)
            if seen_in == "heartbeat":
                await _beat(a)
        redis_server.restart_empty()
        await _beat(a, a)  # the old connection fails once; then a re-seeds: its own day and what gone held
        await asyncio.sleep(1.6)  # gone never writes back: the re-seed waits out its grace
        assert not any(isinstance(x, Reservation) for x in [await admit(a, 10) for _ in range(3)])  # minute full
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        began = int(await client.get("medops:{test}:epoch_at"))
        fresh = int(await client.get(f"medops:{{test}}:q:{MODEL}:fresh"))
        await client.aclose()
        assert fresh == began + 60_000 + 30_000  # a minute and the longest attempt after the new epoch began
        own = 2 if seen_in != "nowhere" else 1
        carried = 6 if seen_in != "nowhere" else 0  # unseen: only the minute's limit below stands for it
        windows = a.snapshot().windows
        # The day's requests counted: a's, gone's, a minute's for the unseen; of them only a's are use (even
        # read from an admission's reply, between heartbeats), the rest held.
        assert (windows[1].counted, windows[1].used) == (own + carried + 10, own)
        assert (windows[3].counted, windows[3].used) == ((own + carried) * 7 + 100_000, own * 7)


async def test_a_member_that_first_reaches_the_store_after_it_was_emptied_holds_the_minute(
        redis_server: RedisServer) -> None:
    # The freeze drill's 429s on a loaded machine: one member sent its prompts and left while the store was frozen;
    # the other, slow to start, had not reached the store yet, so nobody the emptied store sees knew what the old
    # one admitted. A member that could not reach the store at first treats an epoch it finds as maybe emptied.
    limits = ModelLimits(rpm=10, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "gone") as gone:
        for _ in range(10):
            reservation = await admit(gone, 10)
            assert isinstance(reservation, Reservation)
            gone.settle(reservation, 7)
        await _settled(gone)
    redis_server.freeze()
    async with member(redis_server.url, limits, "late", budget=0.25) as late:
        assert not fleet_of(late).ever_seen  # its first beat found the store frozen
        assert isinstance(await admit(late, 10), float)  # never fail open
        redis_server.restart_empty()
        for _ in range(3):  # the old connection fails; then it finds the store empty and begins an epoch
            await _beat(late)
        assert fleet_of(late).store.up
        assert not any(isinstance(x, Reservation) for x in [await admit(late, 10) for _ in range(3)])  # minute held
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        began = int(await client.get("medops:{test}:epoch_at"))
        fresh = int(await client.get(f"medops:{{test}}:q:{MODEL}:fresh"))
        await client.aclose()
        assert fresh == began + 60_000 + 30_000


async def test_a_member_whose_first_try_was_slow_joins_a_running_epoch_without_a_hold(
        redis_server: RedisServer) -> None:
    # The hold is for a store emptied while the member could not reach it (the epoch began after its first try),
    # not for a store that was only slow: a young epoch that was there all along is joined as it is.
    limits = ModelLimits(rpm=10, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "first") as first:
        assert isinstance(await admit(first, 10), Reservation)
        redis_server.freeze()
        async with member(redis_server.url, limits, "slow", budget=0.25) as slow:
            assert not fleet_of(slow).ever_seen
            redis_server.thaw()
            await _beat(slow)
            assert fleet_of(slow).store.up and fleet_of(slow).epoch == fleet_of(first).epoch
            assert isinstance(await admit(slow, 10), Reservation)
            client = redis.Redis.from_url(redis_server.url, decode_responses=True)
            assert await client.get(f"medops:{{test}}:q:{MODEL}:fresh") is None
            await client.aclose()


async def test_store_away_after_uneven_use_the_shares_still_sum_within_the_limit(redis_server: RedisServer) -> None:
    limits = ModelLimits(rpm=30, rpd=1_000, tpm=100_000, tpd=1_000_000)
    clock = FakeClock()
    async with member(redis_server.url, limits, "heavy", clock=clock, budget=0.25) as heavy, \
            member(redis_server.url, limits, "light", clock=clock, budget=0.25) as light:
        await _beat(heavy, light, heavy, light)
        used = [await admit(heavy, 10) for _ in range(20)]
        for reservation in used:
            assert isinstance(reservation, Reservation)
            heavy.settle(reservation, 10)
        await _settled(heavy)
        await _beat(light)  # light last saw the fleet at 20 of 30
        redis_server.freeze()
        try:
            first = [x for q in (light, heavy) for x in [await admit(q, 10) for _ in range(6)]]
            assert not any(isinstance(x, Reservation) for x in first)  # the minute counts as full
            await clock.advance(91)
            light_got = [x for x in [await admit(light, 10) for _ in range(20)] if isinstance(x, Reservation)]
            heavy_got = [x for x in [await admit(heavy, 10) for _ in range(20)] if isinstance(x, Reservation)]
        finally:
            redis_server.thaw()
        # A new minute: each 30 / 2; day: light counts (20 seen + 30 a minute could add) / 2 for the others.
        assert (len(light_got), len(heavy_got)) == (15, 15)


async def test_a_member_stops_even_when_a_cancel_is_lost_inside_a_store_call(redis_server: RedisServer) -> None:
    # redis-py can turn a cancel that lands inside a command into an error; the outbox then went round again and
    # `medops ask` never exited. Here every store call loses its cancel that way.
    async with member(redis_server.url, LIMITS, "a") as a:
        fleet = fleet_of(a)
        real_call = fleet.store.call

        async def call_losing_cancels(call: Call) -> object:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                raise StoreUnavailable("lost cancel") from None
            return await real_call(call)

        fleet.store.call = call_losing_cancels  # type: ignore[method-assign]
        for _ in range(5):
            reservation = await admit(a, 10)
            assert isinstance(reservation, Reservation)
            a.settle(reservation, 1)
        await asyncio.sleep(0.01)  # the outbox is inside a call
        tasks = list(fleet._tasks)
        await asyncio.wait_for(fleet.stop(), timeout=30)  # a guard against hanging, not a timing
        assert tasks and all(task.done() for task in tasks)


async def test_a_429_seen_while_the_store_was_away_binds_every_member_once_it_is_back(
        redis_server: RedisServer) -> None:
    # Signals go out only while the store answers; one seen meanwhile is said again once it is back.
    async with member(redis_server.url, LIMITS, "a", budget=0.25) as a, member(redis_server.url, LIMITS, "b") as b:
        await _beat(a, b)
        redis_server.freeze()
        try:
            await _beat(a)  # a finds the store away
            a.observe_429(30.0, LimitExceeded("tpm", 10_000, 10_000, 10, 30.0))
            a.hold_for_capacity(20.0)
        finally:
            redis_server.thaw()
        await _beat(a)  # back: a writes back, then says what still binds
        await _settled(a)
        assert isinstance(await admit(b, 10), float)
        assert "tpm blocked by a 429 for" in b.blocking(10) and "498" in b.blocking(10)


async def test_a_members_part_is_what_it_admitted_not_what_it_counts_for_the_others(
        redis_server: RedisServer) -> None:
    # Seen in a trial: after a store outage every member reported the whole minute as its own part (parts
    # summing to several times the limit) on every model, and the day windows' carry for a whole day.
    limits = ModelLimits(rpm=30, rpd=1_000, tpm=100_000, tpd=1_000_000)
    async with member(redis_server.url, limits, "busy", budget=0.25) as busy, \
            member(redis_server.url, limits, "idle", budget=0.25) as idle:
        await _beat(busy, idle, busy, idle)
        for reservation in [await admit(busy, 10) for _ in range(3)]:
            assert isinstance(reservation, Reservation)
            busy.settle(reservation, 10)
        await _settled(busy)
        await _beat(idle)
        redis_server.freeze()
        try:
            for quota in (busy, idle):
                assert isinstance(await admit(quota, 10), float)  # cut off: each counts the minute full
            away = [w.own for w in idle.snapshot().windows], [w.own for w in busy.snapshot().windows]
        finally:
            redis_server.thaw()
        rpm = idle.snapshot().windows[0]
        assert rpm.used + rpm.held >= 30 and rpm.remaining == 0  # what it counts for the others still binds it
        await _beat(idle, busy)
        back = [w.own for w in idle.snapshot().windows], [w.own for w in busy.snapshot().windows]
    assert away == back == ([0, 0, 0, 0], [3, 3, 30, 30])
