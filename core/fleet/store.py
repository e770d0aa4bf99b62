"""The quota store: one Redis shared by every medops of a Groq organisation.

Holds the connection (redis-py's asyncio client, one pool per instance), the
namespace, the quota's Lua library (`quota.lua`, loaded once with FUNCTION
LOAD) and the store's health: up or down since when, round-trip times, clock
skew and the members it last saw alive. Each call has a small time budget: a
store that does not answer in it is *down*, and the quota falls back to a
conservative local share (see `fleet.quota`). Nothing here carries patient
data; the URL's password is never shown (`redact_url`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, cast

import redis.asyncio as redis
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from medops.core.clock import Clock
from medops.core.errors import ConfigError
from medops.core.fleet.wire import Call, LegacyWire, Wire, namespace_prefix
from medops.core.settings.redact import redact_url
from medops.core.settings.store_url import check_store_url
from medops.core.snapshot import StoreSnapshot
from medops.core.waits import percentile

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0  # seconds between a member's beats
MEMBER_TTL = 10.0  # a member silent this long is no longer counted alive
RECENT_ROUND_TRIPS = 512
# A store slower than this is treated as down for that call: the quota never waits on it longer.
DEFAULT_BUDGET = 0.25


class StoreUnavailable(ConfigError):
    """The quota store could not be reached or answered out of budget."""


class StoreNeverReached(StoreUnavailable):
    """The fleet's store has not answered once since start, so this member admits nothing (never fails open)."""

    @classmethod
    def after(cls, store: StoreSnapshot, waited: float) -> StoreNeverReached:
        """The error of a request (or a `medops ask` run) that waited `waited` s for a store that never answered."""
        return cls(f"quota store {store.url} never answered in {waited:g} s ({store.last_error or 'no reply'}): a "
                   "fleet member admits nothing until it does, so nothing was sent. Start the store or check "
                   "store_url (MEDOPS_STORE_URL) and MEDOPS_STORE_PASSWORD; `medops doctor` checks it. Without "
                   "store_url this process keeps its own quota")


class LibraryMissing(RedisError):
    """The store has no quota library and this user may not load it."""


def library_source(wire: type[Wire] = Wire) -> str:
    """A wire's Lua library, as FUNCTION LOAD takes it."""
    return resources.files("medops.core.fleet").joinpath(wire.source).read_text()


def _source_of(library: str) -> str:
    for wire in (Wire, LegacyWire):
        if wire.library == library:
            return library_source(wire)
    raise ValueError(f"no such quota library: {library}")


async def load_library(client: redis.Redis, library: str) -> None:
    """Load a version of the library unless the store has it. Never over another: each version has its own name,
    and one already loaded is left as it is (older members may be using it)."""
    try:
        await cast(Awaitable[Any], client.function_load(_source_of(library)))
    except ResponseError as exc:
        if "already exists" not in str(exc):
            raise


def namespace_for(groq_key: str | None, base_url: str, explicit: str = "") -> str:
    """Instances of one Groq organisation share windows; different keys never do.

    An HMAC of the key (not the key) names the namespace; without a key, the endpoint's URL does."""
    if explicit:
        return explicit
    material = f"key:{groq_key}" if groq_key else f"url:{base_url}"
    return hmac.new(b"medops-store-namespace", material.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Member:
    """Who this instance is, as the fleet sees it."""

    instance: str
    host: str
    pid: int
    version: str
    role: str  # console, ask, library, worker
    started: float  # wall time

    def describe(self) -> str:
        return json.dumps({"instance": self.instance, "host": self.host, "pid": self.pid, "version": self.version,
                           "role": self.role, "started": self.started}, separators=(",", ":"))


def new_member(role: str, version: str, clock: Clock) -> Member:
    """A fresh identity for this process (an instance id is never reused)."""
    host = socket.gethostname()
    return Member(f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}", host, os.getpid(), version, role, clock.wall())


class QuotaStore:
    """One instance's connection to the fleet's store, with its health figures."""

    def __init__(self, url: str, namespace: str, clock: Clock, password: str | None = None,
                 budget: float = DEFAULT_BUDGET) -> None:
        check_store_url(url)
        self.url = url
        self.namespace = namespace
        self.prefix = namespace_prefix(namespace)
        self._clock = clock
        self._budget = budget
        self._client = redis.Redis.from_url(
            url, password=password or None, socket_timeout=budget, socket_connect_timeout=budget,
            retry_on_timeout=False, retry=None, health_check_interval=0, decode_responses=True)
        self._loaded: set[str] = set()
        self._round_trips: deque[float] = deque(maxlen=RECENT_ROUND_TRIPS)
        self.up = False
        self.down_since: float | None = None  # wall time of the first failure in a row
        self.last_error = ""
        self.offset_ms = 0.0  # store ms minus local monotonic ms, from the latest answer
        self.skew = 0.0  # store wall minus local wall, seconds
        self.members_alive = 1
        self.last_answer: float | None = None  # monotonic time of the latest answer
        self.on_down: Callable[[], None] | None = None  # told once when the store goes away

    @property
    def client(self) -> redis.Redis:
        """The pooled client, for the fleet's reads and writes beside the quota's functions."""
        return self._client

    async def close(self) -> None:
        await self._client.aclose()

    async def call(self, call: Call) -> Any:
        """One FCALL within the budget; `StoreUnavailable` when the store is away or refuses."""
        before_mono, before_wall = self._clock.monotonic(), self._clock.wall()
        try:
            if call.library not in self._loaded:
                await self._load(call.library)
            try:
                reply = await self._fcall(call)
            except ResponseError as exc:
                if "Function not found" not in str(exc):
                    raise
                # The store restarted without our library (emptied): load it and try once more.
                await self._load(call.library)
                reply = await self._fcall(call)
        except LibraryMissing as exc:
            self._failed(exc)
            raise StoreUnavailable(str(exc)) from None
        except (RedisError, OSError) as exc:
            raise self._failure(exc) from None
        after_mono = self._clock.monotonic()
        self.last_answer = after_mono
        self._round_trips.append(after_mono - before_mono)
        now_ms = float(reply[0] if isinstance(reply, list) else reply)
        middle = (before_mono + after_mono) / 2
        self.offset_ms = now_ms - middle * 1000
        self.skew = now_ms / 1000 - (before_wall + (after_mono - before_mono) / 2)
        return reply

    async def _fcall(self, call: Call) -> Any:
        return await cast(Awaitable[Any], self._client.fcall(call.function, len(call.keys), *call.keys, *call.args))

    async def _load(self, library: str) -> None:
        """Load the library. A member ACL user may not (one member could replace the code every namespace runs):
        then the library the store's admin loaded (`medops fleet acl --apply`) is used, and if there is none the
        call fails saying so."""
        try:
            await load_library(self._client, library)
        except NoPermissionError:
            functions = await cast(Awaitable[Any], self._client.function_list(library=library))
            if not functions:
                raise LibraryMissing(f"quota store {redact_url(self.url)} has no {library} function library and "
                                     "this store user may not load it: have the store's admin run `medops fleet "
                                     "acl --apply`") from None
        self._loaded.add(library)

    def _failure(self, exc: RedisError | OSError) -> BaseException:
        """What a failed call raises: `StoreUnavailable`, the store marked away; or, when this task is being
        cancelled, the cancel. redis-py can turn a cancel that lands inside a command into a connection error
        (see `core/tasks.py`): a member stopping, or a request given up, must not read as the store gone
        (a stopping member would then skip leaving, and its reservations would hold the fleet's room)."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            return asyncio.CancelledError()
        self._failed(exc)
        return StoreUnavailable(f"quota store {redact_url(self.url)} unreachable: {type(exc).__name__}")

    def _failed(self, exc: BaseException) -> None:
        was_up = self.up
        if self.up or self.down_since is None:
            self.down_since = self._clock.wall()
            if self.last_answer is None:  # no share was ever learnt: nothing is admitted, as the log must say
                log.warning("quota store %s never reached (%s): nothing is admitted until it answers",
                            redact_url(self.url), type(exc).__name__)
            else:
                log.warning("quota store %s unreachable (%s); running on a local share", redact_url(self.url),
                            type(exc).__name__)
        self.up = False
        if was_up and self.on_down is not None:
            self.on_down()
        if isinstance(exc, OSError):
            self._loaded.clear()
        self.last_error = type(exc).__name__

    def mark_up(self) -> None:
        if not self.up and self.down_since is not None:
            log.warning("quota store %s reachable again", redact_url(self.url))
        self.up = True
        self.down_since = None

    async def publish(self, instance: str, snapshot: bytes, ttl: float,
                      streams: Sequence[tuple[str, Sequence[dict[str | bytes, str]], int]]) -> None:
        """This member's snapshot and its new stream entries ((stream, entries, maxlen) each), in one round trip."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(f"{self.prefix}snap:{instance}", snapshot, px=int(ttl * 1000))
                for stream, entries, maxlen in streams:
                    for entry in entries:
                        pipe.xadd(f"{self.prefix}{stream}", cast(dict[Any, Any], entry), maxlen=maxlen,
                                  approximate=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failure(exc) from None

    async def alive_descriptions(self, prefix: str, limit: int) -> list[str | None]:
        """The descriptions of up to `limit` members alive under `prefix` (another wire's keys) for a second more
        at least (one that left is listed until now: the second covers the clocks' skew); `StoreUnavailable`
        when the store does not answer."""
        try:
            now_ms = self.to_store_wall_ms(self._clock.wall()) + 1000
            alive = await cast(Any, self._client.zrangebyscore(f"{prefix}alive", now_ms, "+inf", start=0, num=limit))
            if not alive:
                return []
            return list(await cast(Any, self._client.hmget(f"{prefix}members", alive)))
        except (RedisError, OSError) as exc:
            raise self._failure(exc) from None

    def to_store_ms(self, monotonic: float) -> int:
        """A local monotonic time on the store's clock (as of the latest answer)."""
        return int(monotonic * 1000 + self.offset_ms)

    def to_store_wall_ms(self, wall: float) -> int:
        """A local wall time on the store's clock (as of the latest answer)."""
        return int((wall + self.skew) * 1000)

    def snapshot(self, instance: str, share: int, pending: int, seeding: bool) -> StoreSnapshot:
        trips = sorted(self._round_trips)
        state: Literal["up", "down", "seeding"] = "seeding" if self.up and seeding else "up" if self.up else "down"
        return StoreSnapshot(redact_url(self.url), instance, state, self.down_since,
                             percentile(trips, 50) * 1000, percentile(trips, 99) * 1000, self.members_alive,
                             share, round(self.skew, 3), pending, self.last_error)
