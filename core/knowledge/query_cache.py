"""`QueryCache`: DuckDB query results kept in a bounded, expiring cache (cachetools).

Keys come from the normalised SQL text and its parameters; values are tuples of
tuples, so no caller can change what another receives. The cache lives on the
event loop (callers look up before a query and store after it), so it needs no
lock. Its timer is the core `Clock`, so tests move its expiry with a fake clock.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from medops.core.clock import Clock
from medops.core.snapshot import CacheSnapshot

Rows = tuple[tuple[Any, ...], ...]
CacheKey = tuple[str, tuple[Hashable, ...]]

_WHITESPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=256)  # the same few statements come back on every query
def normalise_sql(sql: str) -> str:
    """The SQL text with runs of whitespace collapsed, so layout never splits a key."""
    return _WHITESPACE.sub(" ", sql).strip()


def _frozen(value: Any) -> Hashable:
    """A parameter as a hashable value: lists become tuples, recursively."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if not isinstance(value, Hashable):
        raise TypeError(f"a query parameter of type {type(value).__name__} cannot be part of a cache key")
    return value


def cache_key(sql: str, params: Sequence[Any] = ()) -> CacheKey:
    """The cache key for one query: normalised SQL plus its parameters, typed."""
    return normalise_sql(sql), tuple(_typed(p) for p in params)


def _typed(value: Any) -> Hashable:
    # Type names keep 1, 1.0 and True apart: equal in Python, not in SQL. A list and
    # a tuple are the same SQL list.
    if isinstance(value, list | tuple):
        return "list", tuple(_typed(v) for v in value)
    return type(value).__name__, _frozen(value)


def frozen_rows(rows: Iterable[Sequence[Any]]) -> Rows:
    """Rows as tuples of tuples (DuckDB's lists inside a row become tuples too)."""
    return tuple(tuple(_frozen_cell(cell) for cell in row) for row in rows)


def _frozen_cell(cell: Any) -> Any:
    if isinstance(cell, list):
        return tuple(_frozen_cell(c) for c in cell)
    return cell


@dataclass(frozen=True)
class _Entry:
    rows: Rows
    expires_at: float  # kept with the value so a resize never extends its life


class _CountingTTLCache(TTLCache[CacheKey, _Entry]):
    """A TTLCache that counts what it drops: full-cache evictions and expiries."""

    def __init__(self, maxsize: int, ttl: float, clock: Clock) -> None:
        super().__init__(maxsize, ttl, timer=clock.monotonic)
        self.dropped = 0

    def popitem(self) -> tuple[CacheKey, _Entry]:
        item = super().popitem()
        self.dropped += 1
        return item

    def expire(self, time: float | None = None) -> list[tuple[CacheKey, _Entry]]:
        expired = list(super().expire(time))
        self.dropped += len(expired)
        return expired


class QueryCache:
    """Bounded by `capacity` entries, each living `ttl` seconds of the core clock."""

    def __init__(self, capacity: int, ttl: float, clock: Clock, name: str = "query") -> None:
        self._clock = clock
        self._ttl = ttl
        self._name = name
        self._hits = 0
        self._misses = 0
        self._evictions_before = 0  # evictions counted by caches replaced on resize
        self._cache = self._new_cache(capacity)

    def _new_cache(self, capacity: int) -> _CountingTTLCache | None:
        # cachetools refuses every insert into a zero-size cache; zero means "cache off".
        if capacity <= 0 or self._ttl <= 0:
            return None
        return _CountingTTLCache(capacity, self._ttl, self._clock)

    @property
    def capacity(self) -> int:
        return int(self._cache.maxsize) if self._cache is not None else 0

    def get(self, key: CacheKey) -> Rows | None:
        """The cached rows for `key`, or None (counted as a miss)."""
        entry = self._cache.get(key) if self._cache is not None else None
        if entry is None or entry.expires_at <= self._clock.monotonic():
            self._misses += 1
            return None
        self._hits += 1
        return entry.rows

    def put(self, key: CacheKey, rows: Rows) -> None:
        """Remember `rows` for `key` (they must already be tuples of tuples)."""
        if self._cache is not None:
            self._cache[key] = _Entry(rows, self._clock.monotonic() + self._ttl)

    def resize(self, capacity: int) -> None:
        """Change the bound; the most recently used entries are kept, with their expiry."""
        old = self._cache
        self._cache = self._new_cache(capacity)
        if old is None:
            return
        self._evictions_before += old.dropped
        now = self._clock.monotonic()
        live = [(k, e) for k, e in old.items() if e.expires_at > now]  # oldest first
        if self._cache is None:
            self._evictions_before += len(live)
            return
        kept = live[-capacity:]
        self._evictions_before += len(live) - len(kept)
        for key, entry in kept:
            self._cache[key] = entry

    def clear(self) -> None:
        """Forget every entry (counters stay)."""
        if self._cache is not None:
            self._cache.clear()

    def snapshot(self) -> CacheSnapshot:
        """Size, bound and hit/miss/eviction counts since start."""
        size = 0
        dropped = 0
        if self._cache is not None:
            self._cache.expire()
            size = len(self._cache)
            dropped = self._cache.dropped
        return CacheSnapshot(name=self._name, size=size, capacity=self.capacity, hits=self._hits,
                             misses=self._misses, evictions=self._evictions_before + dropped)
