"""A rolling upgrade on a real redis-server: a member of an older medops (wire v2 only) and a new one share one
set of windows, never over the limit, and the new one moves to wire v3 once the old one has stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
import redis.asyncio as redis

from medops.core.fleet.wire import LegacyWire, Wire
from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits
from tests.helpers.fleet_helpers import MODEL, admit, fleet_of, member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=20, rpd=1_000, tpm=100_000, tpd=1_000_000)
OLD = "medops:test:"  # the old wire's prefix: its keys are built inside its Lua


class OldMember:
    """A member of medops before the typed wire, driven as it drives the store: it loads `medops_quota_v2` with
    replace=True and calls its functions with the prefix as KEYS[1] and the model first."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.epoch = ""
        self.seq = 0
        self.beating: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Stops as the old medops does: its beats end, then it leaves."""
        if self.beating is not None:
            self.beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.beating
        await self.call("medops_leave", "old")

    async def call(self, function: str, *args: Any) -> Any:
        return await self.client.fcall(function, 1, OLD, *args)  # type: ignore[no-untyped-call]

    async def beat(self) -> None:
        reply = await self.call("medops_heartbeat", "old", '{"instance":"old","version":"0.9"}', 10_000, 180_000,
                                self.epoch, 0, "epoch-old", f"{MODEL} {LIMITS.rpm} {LIMITS.rpd} {LIMITS.tpm} "
                                f"{LIMITS.tpd}")
        self.epoch = str(reply[1])

    async def admit(self) -> bool:
        self.seq += 1
        reply = await self.call("medops_admit", MODEL, "old", f"old:{self.seq}", 10, 0, 0, LIMITS.rpm, LIMITS.rpd,
                                LIMITS.tpm, LIMITS.tpd, 180_000, 30_000, 2_000, self.epoch)
        if reply[1] != "ok":
            return False
        await self.call("medops_settle", MODEL, f"old:{self.seq}", 5)
        return True


@pytest.fixture
async def old(redis_server: RedisServer) -> AsyncIterator[OldMember]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    source = resources.files("medops.core.fleet").joinpath(LegacyWire.source).read_text()
    await client.function_load(source, replace=True)  # as the old medops loads it
    old = OldMember(client)
    await old.beat()

    async def beating() -> None:
        while True:
            await asyncio.sleep(1.0)
            await old.beat()

    old.beating = asyncio.create_task(beating())
    try:
        yield old
    finally:
        await old.stop()
        await client.aclose()


async def _store_count(client: redis.Redis, prefix: str) -> int:
    """Requests the old wire's windows count in the minute: settled in it, and in flight."""
    return int(await client.zcard(f"{prefix}q:{MODEL}:min")) + int(await client.hlen(f"{prefix}q:{MODEL}:fly"))


async def test_an_old_and_a_new_member_share_the_old_windows_and_never_overrun(
        redis_server: RedisServer, old: OldMember) -> None:
    async with member(redis_server.url, LIMITS, "new") as new:
        assert fleet_of(new).wire.version == LegacyWire.version  # an old member is alive: the new one speaks v2
        admitted = {"old": 0, "new": 0}

        async def new_side() -> None:
            answer = await admit(new, 10)
            if isinstance(answer, Reservation):
                admitted["new"] += 1
                new.settle(answer, 5)

        async def old_side() -> None:
            ok = await old.admit()  # before adding: `+= await` would read the count before the others' turns
            admitted["old"] += ok

        for _ in range(4):  # taking turns, then both at once (the load)
            await old_side()
            await new_side()
        for _ in range(3):
            await asyncio.gather(*(old_side() for _ in range(10)), *(new_side() for _ in range(10)))
            await fleet_of(new).flush()
            assert await _store_count(old.client, OLD) <= LIMITS.rpm  # the store's own count
        assert admitted["old"] > 0 and admitted["new"] > 0
        assert admitted["old"] + admitted["new"] == LIMITS.rpm
        assert await _store_count(old.client, OLD) == LIMITS.rpm
        assert await old.client.exists(Wire("test").model_keys(MODEL)[0]) == 0  # nothing in the v3 windows


async def test_the_new_member_moves_to_the_new_wire_when_the_old_ones_stop_carrying_their_use(
        redis_server: RedisServer, old: OldMember, caplog: pytest.LogCaptureFixture) -> None:
    async with member(redis_server.url, LIMITS, "new") as new:
        for _ in range(5):
            assert await old.admit()
            answer = await admit(new, 10)
            assert isinstance(answer, Reservation)
            new.settle(answer, 5)
        await fleet_of(new).flush()
        await fleet_of(new).heartbeat()  # it sees the old member's part
        await old.stop()
        await fleet_of(new).heartbeat()
        assert fleet_of(new).wire.version == Wire.version
        assert "moving to v3" in caplog.text
        # Its own day went into the v3 windows, the old member's part with it; the minute counts as full for a
        # minute (what the old one may have admitted unseen in its last moments).
        assert isinstance(await admit(new, 10), float)
        windows = new.snapshot().windows
        assert windows[1].used >= 10 and windows[0].used == LIMITS.rpm
