"""Agent keys in the fleet's store, so every gateway on it shares them: digests only, under the fleet namespace.

Three hashes: the keys by index (`keys.index_of`), their names, their last use.
A gateway asks the store again for a key it read more than `FRESH_FOR` ago, so a
revocation made anywhere holds everywhere within a second. While the store is
away a key seen before is answered as last read (a revocation cannot reach the
store then either); one never seen cannot be checked (`KeyBookUnavailable`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, cast

from redis.exceptions import NoPermissionError, RedisError

from medops.core.clock import Clock
from medops.core.fleet.store import QuotaStore
from medops.core.gateway.keys import FRESH_FOR, AgentKey, KeyBookError, KeyBookUnavailable, index_of, same_digest
from medops.core.settings.redact import redact_url

CACHE_LIMIT = 10_000  # keys (and wrong keys) remembered; past it the memory starts again


class RedisKeyBook:
    """The fleet's keys (see keys.KeyBook), through the store's connection."""

    def __init__(self, store: QuotaStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._keys = f"{store.prefix}gateway:keys"
        self._names = f"{store.prefix}gateway:key_names"
        self._used = f"{store.prefix}gateway:key_used"
        self._cache: dict[str, tuple[float, str, AgentKey | None]] = {}  # index -> (read at, digest, key)
        self._uses: dict[str, float] = {}

    async def add(self, key: AgentKey, key_digest: str) -> None:
        client = self._store.client
        index = index_of(key_digest)
        record = json.dumps({"digest": key_digest, **key.to_record()})
        try:
            if not await cast(Awaitable[int], client.hsetnx(self._names, key.name, index)):
                raise KeyBookError(f"a key called {key.name!r} exists; revoke it first or pick another name")
            await cast(Awaitable[int], client.hset(self._keys, index, record))
            await cast(Awaitable[int], client.hdel(self._used, key.name))  # a revoked namesake's stray use
        except (RedisError, OSError) as exc:
            raise self._unreachable(exc) from None

    async def keys(self) -> tuple[AgentKey, ...]:
        client = self._store.client
        try:
            records = await cast(Awaitable[dict[str, str]], client.hgetall(self._keys))
            used = await cast(Awaitable[dict[str, str]], client.hgetall(self._used))
        except (RedisError, OSError) as exc:
            raise self._unreachable(exc) from None
        found = [_key(raw, used) for raw in records.values()]
        return tuple(sorted(found, key=lambda k: k.name))

    async def revoke(self, name: str) -> bool:
        client = self._store.client
        try:
            index = await cast(Awaitable[str | None], client.hget(self._names, name))
            if index is None:
                return False
            async with client.pipeline(transaction=True) as pipe:
                pipe.hdel(self._keys, index)
                pipe.hdel(self._names, name)
                pipe.hdel(self._used, name)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unreachable(exc) from None
        return True

    async def find(self, key_digest: str) -> AgentKey | None:
        index = index_of(key_digest)
        now = self._clock.monotonic()
        cached = self._cache.get(index)
        if cached is None or now - cached[0] >= FRESH_FOR:
            try:
                raw = await cast(Awaitable[str | None], self._store.client.hget(self._keys, index))
            except (RedisError, OSError) as exc:
                if cached is None:
                    raise KeyBookUnavailable(f"the key store {redact_url(self._store.url)} did not answer "
                                             f"({type(exc).__name__}); retry shortly") from None
            else:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                key = _key(raw, {}) if raw is not None else None
                kept = str(json.loads(raw).get("digest", "")) if raw is not None else ""
                cached = (now, kept, key)
                self._cache[index] = cached
        _, kept, key = cached
        return key if key is not None and same_digest(kept, key_digest) else None

    def touch(self, name: str, wall: float) -> None:
        self._uses[name] = wall

    async def flush(self) -> None:
        uses, self._uses = self._uses, {}
        if not uses:
            return
        # Plain reads and writes, no EVAL: a gateway runs as the fleet's member user, which may not script.
        # A use is written only for a key still there and only forward; a revocation landing between the read
        # and the write leaves a stray last use, which `keys` never shows (it lists keys) and `add` clears.
        names = list(uses)
        client = self._store.client
        try:
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hexists(self._names, name)
                pipe.hmget(self._used, names)
                *present, old = await pipe.execute()
            newer = {name: repr(uses[name]) for name, there, was in zip(names, present, old, strict=True)
                     if there and uses[name] > _wall(was)}
            if newer:
                await cast(Awaitable[int], client.hset(self._used, mapping=newer))
        except (RedisError, OSError):
            for name, wall in uses.items():  # kept for the next flush: a last use is not worth an error
                self._uses.setdefault(name, wall)

    async def close(self) -> None:
        await self.flush()
        await self._store.close()

    def _unreachable(self, exc: BaseException) -> KeyBookError:
        if isinstance(exc, NoPermissionError):
            return KeyBookError(f"the store user of {redact_url(self._store.url)} may not change the agent keys: "
                                "set store_user (MEDOPS_STORE_USER) to an operator user (see `medops fleet acl`)")
        return KeyBookUnavailable(f"the key store {redact_url(self._store.url)} cannot be reached "
                                  f"({type(exc).__name__}); check store_url, MEDOPS_STORE_PASSWORD and that it runs")


def _key(raw: str, used: dict[str, str]) -> AgentKey:
    try:
        record = json.loads(raw)
    except ValueError:
        raise KeyBookError("a stored key record is damaged (not JSON); revoke it and add it again") from None
    if not isinstance(record, dict):
        raise KeyBookError("a stored key record is damaged (not an object); revoke it and add it again")
    last = used.get(str(record.get("name")))
    return AgentKey.from_record(record, float(last) if last is not None else None)


def _wall(raw: Any) -> float:
    """A last use as stored; 0 for none or one that is not a number (written over)."""
    try:
        return float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
