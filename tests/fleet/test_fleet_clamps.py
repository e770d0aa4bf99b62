"""The quota's Lua functions on a real redis-server, called as a hostile member would: every figure is clamped.

Each test sends one forged call from issue 26 straight to the store (FCALL with the namespace's keys, as any
member holding the store's password can) and shows that an honest member is held at most a stated bound.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
import redis.asyncio as redis

from medops.core.fleet.wire import Wire
from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits
from tests.helpers.fleet_helpers import MODEL, admit, member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=5, rpd=1_000, tpm=10_000, tpd=1_000_000)
PREFIX = "medops:{test}:"
DAY_MS, MINUTE_MS = 86_400_000, 60_000
SIG = f"{PREFIX}q:{MODEL}:sig"
MODEL_KEYS = Wire("test").model_keys(MODEL)
NAMESPACE_KEYS = Wire("test").namespace_keys()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.function_load(resources.files("medops.core.fleet").joinpath(Wire.source).read_text())
    try:
        yield client
    finally:
        await client.aclose()


async def forge(client: redis.Redis, function: str, *args: Any, keys: tuple[str, ...] = MODEL_KEYS) -> Any:
    """`function` of the current wire (`admit` is `medops_v3_admit`) with any arguments; the model's keys."""
    return await client.fcall(f"medops_v3_{function}", len(keys), *keys, *args)  # type: ignore[no-untyped-call]


async def store_now(client: redis.Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_forged_year_long_429_block_is_cut_to_a_day(redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest") as honest:
        await forge(raw, "signal", "block", "1234", 31_536_000_000)
        now = await store_now(raw)
        blocks = await raw.hmget(SIG, "b1", "b2", "b3", "b4")
        assert all(now < int(b) <= now + DAY_MS for b in blocks)
        assert isinstance(await admit(honest, 10), float)
        assert all(w.blocked_for <= 86_400 for w in honest.snapshot().windows)


async def test_a_block_written_past_the_bound_straight_into_the_hash_is_cut_when_read(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest") as honest:
        await raw.hset(SIG, mapping={"b1": 2_000_000_000_000_000, "held": 2_000_000_000_000_000})
        await admit(honest, 10)
        now = await store_now(raw)
        assert int(await raw.hget(SIG, "b1") or 0) <= now + DAY_MS
        assert int(await raw.hget(SIG, "held") or 0) <= now + 5 * MINUTE_MS
        assert honest.capacity_hold <= 300


async def test_a_forged_498_hold_lasts_at_most_five_minutes(redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest"):
        await forge(raw, "signal", "hold", 31_536_000_000)
        now = await store_now(raw)
        assert now < int(await raw.hget(SIG, "held") or 0) <= now + 5 * MINUTE_MS


async def test_a_forged_zero_limit_is_one_and_lapses(redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest") as honest:
        await forge(raw, "signal", "limit", 1, 0)
        assert await raw.hget(SIG, "s1") == "1"
        assert isinstance(await admit(honest, 10), Reservation)  # rpm is 1 now, not full for ever
        now = await store_now(raw)
        assert int(await raw.hget(SIG, "l1") or 0) <= now + 60 * MINUTE_MS
        await forge(raw, "signal", "limit", 9, -5)  # no such dimension: ignored
        assert await raw.hget(SIG, "s9") is None


async def test_a_forged_extra_count_is_at_most_the_limit_for_at_most_its_window(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest"):
        await forge(raw, "signal", "extra", 1, 10**18, 0, 31_536_000_000)
        now = await store_now(raw)
        assert int(await raw.hget(SIG, "u1") or 0) <= now + MINUTE_MS


async def test_a_huge_seed_grace_holds_an_emptied_store_at_most_two_minutes(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    await forge(raw, "heartbeat", "forger", "{}", 10_000, 180_000, "", 2_000_000_000_000, "epoch-x",
                keys=NAMESPACE_KEYS)
    await forge(raw, "seeded", "forger", 10**15, keys=NAMESPACE_KEYS)
    now = await store_now(raw)
    assert int(await raw.get(f"{PREFIX}seeding_until") or 0) <= now + 2 * MINUTE_MS
    assert int(await raw.get(f"{PREFIX}seed_expect") or 0) <= 1000
    reply = await forge(raw, "admit", "x", "x:1", 10, 0, 0, 5, 1000, 10_000, 1_000_000,
                        180_000, 30_000, 2_000, "epoch-x")
    assert reply[1] == "seeding" and int(reply[2]) <= 2 * MINUTE_MS


async def test_a_seeding_cap_written_years_ahead_is_read_as_two_minutes(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    await forge(raw, "heartbeat", "forger", "{}", 10_000, 180_000, "", 0, "epoch-x", keys=NAMESPACE_KEYS)
    await raw.set(f"{PREFIX}seeding_until", 2_000_000_000_000_000)
    await raw.set(f"{PREFIX}seed_expect", 10**12)
    reply = await forge(raw, "admit", "x", "x:1", 10, 0, 0, 5, 1000, 10_000, 1_000_000,
                        180_000, 30_000, 2_000, "epoch-x")
    assert reply[1] == "seeding" and int(reply[2]) <= 2 * MINUTE_MS


async def test_negative_write_back_entries_count_as_zero(redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest") as honest:
        now = await store_now(raw)
        await forge(raw, "sync", "forger", 180_000,
                    *(f"s forger:{i} {now} -1000 -99999999" for i in range(5)), "f forger:9 -99999999")
        sums = await raw.hgetall(f"{PREFIX}q:{MODEL}:sum")
        assert all(int(v) >= 0 for v in sums.values())
        answers = [await admit(honest, 10) for _ in range(7)]
        # The minute does not overrun: 5 a minute, less the forged flight (it counts as one request, 0 tokens).
        assert sum(isinstance(a, Reservation) for a in answers) == 4
        assert all(w.used >= 0 for w in honest.snapshot().windows)


async def test_a_negative_settle_counts_zero_tokens(redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest") as honest:
        await forge(raw, "settle", "forger:1", -99_999_999)
        await admit(honest, 10)
        assert honest.snapshot().windows[3].used >= 0


async def test_a_hundred_thousand_forged_late_members_do_not_hold_the_window(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest") as honest:
        now = await store_now(raw)
        names = [f"forged-{i}" for i in range(100_000)]
        for start in range(0, len(names), 10_000):
            chunk = names[start:start + 10_000]
            async with raw.pipeline(transaction=False) as pipe:
                pipe.zadd(f"{PREFIX}beat", {name: now - 5_000 for name in chunk})  # late: maybe on a local share
                pipe.zadd(f"{PREFIX}alive", {name: now + 5_000 for name in chunk})
                pipe.hset(f"{PREFIX}share", mapping={name: 1 for name in chunk})  # each claims the whole limit
                await pipe.execute()
        began = time.monotonic()
        answer = await admit(honest, 10)
        assert isinstance(answer, Reservation)
        assert time.monotonic() - began < 0.5  # one admission walks a bounded number of members
        reply = await forge(raw, "heartbeat", "honest", "{}", 10_000, 180_000, "", 0, "", "5 1000 10000 1000000")
        assert int(reply[3]) <= 1000  # members counted alive are capped


async def test_an_operator_clear_lifts_blocks_and_holds(redis_server: RedisServer, raw: redis.Redis) -> None:
    async with member(redis_server.url, LIMITS, "honest") as honest:
        await forge(raw, "signal", "block", "1234", 3_600_000)
        await forge(raw, "signal", "hold", 60_000)
        assert isinstance(await admit(honest, 10), float)
        await forge(raw, "clear", keys=(SIG,))
        assert isinstance(await admit(honest, 10), Reservation)
