"""The auto-tuner acting on a real I/O pool and a real query cache, fed fixed metrics."""

from __future__ import annotations

from dataclasses import replace

import pytest

from medops.core.clock import FakeClock
from medops.core.executors import ResizablePool
from medops.core.knowledge.query_cache import QueryCache
from medops.core.settings.config import MIB, Settings
from medops.core.snapshot import PoolSnapshot
from medops.core.watch.tuner import Tuner
from tests.helpers.fake_metrics import FakeMetricsSource

SETTINGS = Settings(io_threads=8, io_threads_min=4, io_threads_max=16, query_cache_size=1_000,
                    max_cases_in_memory=1_000, case_memory_mb=10)


@pytest.fixture
def source() -> FakeMetricsSource:
    return FakeMetricsSource()


@pytest.fixture
def pool(clock: FakeClock) -> ResizablePool:
    return ResizablePool("io", SETTINGS.io_threads, clock)


@pytest.fixture
def cache(clock: FakeClock) -> QueryCache:
    return QueryCache(SETTINGS.query_cache_size, 60.0, clock)


@pytest.fixture
def tuner(clock: FakeClock, source: FakeMetricsSource, pool: ResizablePool, cache: QueryCache) -> Tuner:
    return Tuner(clock, SETTINGS, source, pool, cache)


def test_io_threads_grow_when_cpu_and_memory_have_room_and_work_waits(tuner: Tuner, pool: ResizablePool) -> None:
    changes = tuner.step(SETTINGS)
    assert [(c.knob, c.old, c.new, c.applied) for c in changes] == [("io_threads", 8, 12, True)]
    assert pool.capacity == 12
    assert "CPU 30% < 50%" in changes[0].reason and "5 jobs waiting" in changes[0].reason


def test_io_threads_stop_at_the_configured_ceiling(tuner: Tuner, pool: ResizablePool) -> None:
    for _ in range(5):
        tuner.step(SETTINGS)
    assert pool.capacity == 16
    assert [c.new for c in tuner.snapshot(SETTINGS).changes] == [16, 12]  # newest first, nothing past the ceiling


def test_idle_io_threads_are_not_added(tuner: Tuner, source: FakeMetricsSource, pool: ResizablePool) -> None:
    source.set(io_pool=PoolSnapshot("io", capacity=8, queued=0))
    assert tuner.step(SETTINGS) == []
    assert pool.capacity == 8


def test_io_threads_do_not_grow_when_memory_is_tight(
        tuner: Tuner, source: FakeMetricsSource, pool: ResizablePool) -> None:
    source.set(memory_percent=75.0)
    assert tuner.step(SETTINGS) == []
    assert pool.capacity == 8


def test_io_threads_shrink_when_cpu_is_high_down_to_the_floor(
        tuner: Tuner, source: FakeMetricsSource, pool: ResizablePool) -> None:
    source.set(cpu_percent=92.0)
    first = tuner.step(SETTINGS)
    assert [(c.old, c.new) for c in first] == [(8, 4)]
    assert "CPU 92% > 80%" in first[0].reason
    assert tuner.step(SETTINGS) == []  # at io_threads_min already
    assert pool.capacity == 4


def test_the_query_cache_follows_available_memory(
        tuner: Tuner, source: FakeMetricsSource, cache: QueryCache) -> None:
    source.set(memory_available=4_000 * MIB, io_pool=PoolSnapshot("io", capacity=8))
    grown = [c for c in tuner.step(SETTINGS) if c.knob == "query_cache_size"]
    assert [(c.old, c.new, c.applied) for c in grown] == [(1_000, 2_000, True)]
    assert cache.capacity == 2_000
    assert not [c for c in tuner.step(SETTINGS) if c.knob == "query_cache_size"]  # steady: no churn
    source.set(memory_available=300 * MIB)
    shrunk = [c for c in tuner.step(SETTINGS) if c.knob == "query_cache_size"]
    assert [(c.old, c.new) for c in shrunk] == [(2_000, 500)]
    assert "300 MiB available < 500 MiB" in shrunk[0].reason
    assert cache.capacity == 500


def test_the_tuner_reapplies_its_size_to_a_cache_resized_without_a_pin(
        tuner: Tuner, source: FakeMetricsSource, cache: QueryCache) -> None:
    source.set(memory_available=4_000 * MIB, io_pool=PoolSnapshot("io", capacity=8))
    tuner.step(SETTINGS)
    assert cache.capacity == 2_000
    cache.resize(SETTINGS.query_cache_size)  # as after the operator handed a pinned size back ("auto")
    regrown = [c for c in tuner.step(SETTINGS) if c.knob == "query_cache_size"]
    assert [(c.old, c.new) for c in regrown] == [(1_000, 2_000)]
    assert cache.capacity == 2_000


def test_the_tuner_leaves_a_cache_switched_off_by_its_ttl_alone(
        clock: FakeClock, source: FakeMetricsSource, pool: ResizablePool) -> None:
    off = QueryCache(SETTINGS.query_cache_size, 0.0, clock)  # query_cache_ttl = 0: nothing is ever cached
    tuner = Tuner(clock, SETTINGS, source, pool, off)
    source.set(memory_available=4_000 * MIB)
    assert not [c for c in tuner.step(SETTINGS) if c.knob == "query_cache_size"]
    assert off.capacity == 0


def test_case_slots_get_advice_not_a_pretend_resize(tuner: Tuner, source: FakeMetricsSource) -> None:
    source.set(memory_available=4_000 * MIB, io_pool=PoolSnapshot("io", capacity=8))
    advice = [c for c in tuner.step(SETTINGS) if c.knob == "max_cases_in_memory"]
    assert [(c.old, c.new, c.applied) for c in advice] == [(1_000, 2_000, False)]
    assert "cannot be resized while running" in advice[0].reason
    assert "max_cases_in_memory = 2000 and case_memory_mb = 20" in advice[0].reason
    assert not [c for c in tuner.step(SETTINGS) if c.knob == "max_cases_in_memory"]  # said once


def test_a_disabled_tuner_changes_nothing(tuner: Tuner, pool: ResizablePool, cache: QueryCache,
                                          source: FakeMetricsSource) -> None:
    source.set(memory_available=4_000 * MIB)
    off = replace(SETTINGS, tuner_enabled=False)
    assert tuner.step(off) == []
    assert (pool.capacity, cache.capacity) == (8, 1_000)
    assert tuner.step(SETTINGS) != []


def test_the_snapshot_shows_whether_the_settings_enable_the_tuner(tuner: Tuner) -> None:
    assert tuner.snapshot(SETTINGS).enabled is True
    assert tuner.snapshot(replace(SETTINGS, tuner_enabled=False)).enabled is False  # no round needed


def test_no_metrics_yet_means_no_decision(tuner: Tuner, source: FakeMetricsSource, pool: ResizablePool) -> None:
    source.figures = None
    assert tuner.step(SETTINGS) == []
    assert tuner.snapshot(SETTINGS).changes == ()


def test_changes_carry_the_time_they_were_made(tuner: Tuner, clock: FakeClock) -> None:
    (change,) = tuner.step(SETTINGS)
    assert change.at == clock.wall()


def test_a_pinned_knob_is_left_alone_with_one_record(tuner: Tuner, pool: ResizablePool, clock: FakeClock) -> None:
    tuner.pins.pin("io_threads", "8", clock.wall(), "console")
    (skipped,) = tuner.step(SETTINGS)
    assert (skipped.knob, skipped.old, skipped.new, skipped.applied, skipped.skipped) == \
        ("io_threads", 8, 8, False, True)
    assert tuner.step(SETTINGS) == []
    assert pool.capacity == 8
    assert tuner.snapshot(SETTINGS).pinned == ("io_threads",)
