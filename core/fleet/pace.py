"""The organisation's pace: what the store's day buckets took in over the last hour, read only.

Each member's settled use sits in the day window's buckets (`day`: entry -> bucket end,
`damt`: entry -> "requests tokens"), a minute wide. Buckets ending in the last hour hold
what settled then (up to a bucket's width more): the fleet's burn rate. Nothing is written.

A member reads it (`fleet_pace`) every PACE_INTERVAL after its heartbeat, so its burn rate is the
organisation's while the store answers; an attached view reads it with the fleet (`view.read_fleet`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as redis

from medops.core.fleet.wire import model_key

HOUR_MS = 3_600_000
PACE_INTERVAL = 10.0  # seconds between a member's readings of the fleet's pace: an hour's pace moves slowly
PACE_KEPT = 3 * PACE_INTERVAL  # a reading older than this is not shown (the store stopped answering meanwhile)
MAX_BUCKETS = 60 * 1_000  # a minute-wide bucket per member an hour, for a thousand members: a bound, not a guess


async def hour_use(client: redis.Redis, prefix: str, models: Sequence[str], now_ms: float) -> list[tuple[int, int]]:
    """(requests, tokens) each model's day buckets took in over the hour before `now_ms` (store ms)."""
    async with client.pipeline(transaction=False) as pipe:
        for model in models:
            pipe.zrangebyscore(model_key(prefix, model, "day"), f"({int(now_ms - HOUR_MS)}", "+inf",
                               start=0, num=MAX_BUCKETS)
        buckets = cast(list[list[bytes]], await pipe.execute())
    async with client.pipeline(transaction=False) as pipe:
        for model, entries in zip(models, buckets, strict=True):
            if entries:
                pipe.hmget(model_key(prefix, model, "damt"), entries)
        amounts = iter(cast(list[list[Any]], await pipe.execute()))
    return [_summed(next(amounts)) if entries else (0, 0) for entries in buckets]


def _summed(values: Sequence[bytes | None]) -> tuple[int, int]:
    """"requests tokens" figures added up; one that does not read as two whole numbers counts as none."""
    requests = tokens = 0
    for value in values:
        try:
            r, t = (int(v) for v in (value or b"0 0").split())
        except ValueError:
            continue
        requests, tokens = requests + max(0, r), tokens + max(0, t)
    return requests, tokens


async def fleet_pace(client: redis.Redis, prefix: str, models: Sequence[str],
                     now_ms: float) -> dict[str, tuple[int, int]]:
    """model -> (requests, tokens) that entered its day windows in the hour before `now_ms` (store ms), across
    the fleet: settled in the buckets, plus what is in flight now (as the windows count it)."""
    settled = await hour_use(client, prefix, models, now_ms)
    async with client.pipeline(transaction=False) as pipe:
        for model in models:
            pipe.hmget(model_key(prefix, model, "sum"), ["fr", "ft"])
        flights = cast(list[list[bytes | None]], await pipe.execute())
    return {model: (requests + _count(flying[0]), tokens + _count(flying[1]))
            for model, (requests, tokens), flying in zip(models, settled, flights, strict=True)}


def _count(value: bytes | None) -> int:
    """A running sum as stored; one that does not read as a whole number counts as none."""
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0
