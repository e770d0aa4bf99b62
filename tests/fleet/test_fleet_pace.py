"""The organisation's pace on a real store: what its members settled into the day window in the last hour,
read from the store's day buckets without writing anything."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import redis.asyncio as redis

from medops.core.fleet.pace import hour_use
from medops.core.fleet.wire import namespace_prefix
from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits
from tests.helpers.fleet_helpers import MODEL, admit, fleet_of, member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=100, rpd=1_000, tpm=100_000, tpd=1_000_000)


async def test_the_fleets_last_hour_sums_every_members_settled_use(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "a") as a, member(redis_server.url, LIMITS, "b") as b:
        for quota, used in ((a, 40), (b, 60), (a, 5)):
            reservation = await admit(quota, 100)
            assert isinstance(reservation, Reservation)
            quota.settle(reservation, used)
        for quota in (a, b):
            await asyncio.wait_for(fleet_of(quota).flush(), timeout=10)
        client = redis.Redis.from_url(redis_server.url)
        try:
            seconds, micros = await cast(Any, client.time())
            now_ms = seconds * 1000 + micros / 1000
            before = await client.dbsize()
            assert await hour_use(client, namespace_prefix("test"), [MODEL, "other"], now_ms) == [(3, 105), (0, 0)]
            # an hour on, those buckets have left the last hour (they count in the day window still)
            assert await hour_use(client, namespace_prefix("test"), [MODEL], now_ms + 3_600_000 + 60_000) == \
                [(0, 0)]
            assert await client.dbsize() == before  # read only
        finally:
            await client.aclose()
