"""The query cache: keys, bounds, expiry on the core clock, resizing, immutable results."""

from __future__ import annotations

import pytest

from medops.core.clock import FakeClock
from medops.core.knowledge.query_cache import QueryCache, cache_key, frozen_rows


def test_a_second_lookup_of_the_same_query_is_a_hit(clock: FakeClock) -> None:
    cache = QueryCache(10, 60, clock)
    key = cache_key("SELECT 1 WHERE x = ?", ["a"])
    assert cache.get(key) is None
    cache.put(key, ((1,),))
    assert cache.get(key) == ((1,),)
    snapshot = cache.snapshot()
    assert (snapshot.hits, snapshot.misses, snapshot.size) == (1, 1, 1)


def test_layout_of_the_sql_does_not_split_keys_but_parameters_do() -> None:
    assert cache_key("SELECT  a\n FROM t WHERE b = ?", [1]) == cache_key("SELECT a FROM t WHERE b = ?", [1])
    assert cache_key("SELECT a FROM t WHERE b = ?", [1]) != cache_key("SELECT a FROM t WHERE b = ?", [2])
    # Equal in Python, different in SQL.
    assert len({cache_key("SELECT ?", [1]), cache_key("SELECT ?", [1.0]), cache_key("SELECT ?", [True])}) == 3


def test_list_parameters_make_usable_keys() -> None:
    assert cache_key("SELECT ?", [["chest", "pain"]]) == cache_key("SELECT ?", [("chest", "pain")])


async def test_an_entry_expires_after_its_ttl_on_the_core_clock(clock: FakeClock) -> None:
    cache = QueryCache(10, 60, clock)
    key = cache_key("SELECT 1")
    cache.put(key, ((1,),))
    await clock.advance(59)
    assert cache.get(key) == ((1,),)
    await clock.advance(1)
    assert cache.get(key) is None
    assert cache.snapshot().evictions == 1


def test_a_full_cache_drops_the_least_recently_used_entry(clock: FakeClock) -> None:
    cache = QueryCache(2, 60, clock)
    first, second, third = (cache_key("SELECT ?", [n]) for n in range(3))
    cache.put(first, ((0,),))
    cache.put(second, ((1,),))
    assert cache.get(first) is not None  # first is now the most recently used
    cache.put(third, ((2,),))
    assert cache.get(second) is None
    assert cache.get(first) is not None
    snapshot = cache.snapshot()
    assert (snapshot.size, snapshot.capacity, snapshot.evictions) == (2, 2, 1)


def test_shrinking_keeps_the_most_recently_used_and_counts_the_rest(clock: FakeClock) -> None:
    cache = QueryCache(4, 60, clock)
    keys = [cache_key("SELECT ?", [n]) for n in range(4)]
    for n, key in enumerate(keys):
        cache.put(key, ((n,),))
    cache.resize(2)
    assert [cache.get(k) for k in keys] == [None, None, ((2,),), ((3,),)]
    snapshot = cache.snapshot()
    assert (snapshot.capacity, snapshot.size, snapshot.evictions) == (2, 2, 2)


def test_growing_keeps_every_entry(clock: FakeClock) -> None:
    cache = QueryCache(2, 60, clock)
    keys = [cache_key("SELECT ?", [n]) for n in range(2)]
    for n, key in enumerate(keys):
        cache.put(key, ((n,),))
    cache.resize(100)
    assert [cache.get(k) for k in keys] == [((0,),), ((1,),)]
    assert cache.snapshot().capacity == 100


async def test_a_resize_never_extends_an_entry_s_life(clock: FakeClock) -> None:
    cache = QueryCache(4, 60, clock)
    key = cache_key("SELECT 1")
    cache.put(key, ((1,),))
    await clock.advance(30)
    cache.resize(8)
    await clock.advance(30)
    assert cache.get(key) is None


def test_a_zero_size_cache_caches_nothing(clock: FakeClock) -> None:
    cache = QueryCache(0, 60, clock)
    key = cache_key("SELECT 1")
    cache.put(key, ((1,),))
    assert cache.get(key) is None
    assert cache.snapshot().capacity == 0


def test_rows_are_frozen_all_the_way_down() -> None:
    rows = frozen_rows([[1, ["a", "b"]], [2, []]])
    assert rows == ((1, ("a", "b")), (2, ()))
    with pytest.raises(TypeError):
        rows[0][1][0] = "changed"  # type: ignore[index]
