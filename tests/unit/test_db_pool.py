"""The DuckDB pool: one database, a cursor per worker thread, timeouts that interrupt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import pytest

from medops.core.clock import FakeClock
from medops.core.knowledge.db_pool import DuckDBPool, PoolClosed, QueryFailed, QueryTimedOut
from tests.helpers.waiting import eventually

# A cross join DuckDB cannot shortcut: minutes of work unless interrupted.
SLOW_SQL = "SELECT sum(a.range * b.range) FROM range(1000000000) a, range(1000000000) b"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "small.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE numbers AS SELECT range AS n, 'n' || range AS label FROM range(1000)")
    return path


@pytest.fixture
async def pool(database: Path, clock: FakeClock) -> AsyncIterator[DuckDBPool]:
    pool = DuckDBPool(size=2, query_timeout=5.0, clock=clock)
    await asyncio.to_thread(pool.open, database)
    yield pool
    await asyncio.to_thread(pool.close)


async def test_a_query_returns_its_rows_as_tuples_of_tuples(pool: DuckDBPool) -> None:
    rows = await pool.fetch("SELECT n, label FROM numbers WHERE n < ? ORDER BY n", [3])
    assert rows == ((0, "n0"), (1, "n1"), (2, "n2"))
    assert isinstance(rows, tuple) and all(isinstance(row, tuple) for row in rows)


async def test_concurrent_queries_each_get_their_own_result(pool: DuckDBPool) -> None:
    # On a shared connection a second execute empties the first result; cursors per worker do not.
    results = await asyncio.gather(*(pool.fetch("SELECT label FROM numbers WHERE n = ?", [n]) for n in range(40)))
    assert results == [((f"n{n}",),) for n in range(40)]
    assert pool.snapshot().completed == 40


async def test_the_event_loop_keeps_running_while_a_query_runs(pool: DuckDBPool) -> None:
    slow = asyncio.ensure_future(pool.fetch(SLOW_SQL))
    assert await eventually(lambda: pool.snapshot().active == 1)
    # The loop is free: another query goes through the second worker meanwhile.
    assert await pool.fetch("SELECT count(*) FROM numbers") == ((1000,),)
    assert not slow.done()
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow


async def test_a_query_past_its_timeout_is_interrupted_and_reported(pool: DuckDBPool, clock: FakeClock) -> None:
    slow = asyncio.ensure_future(pool.fetch(SLOW_SQL))
    assert await eventually(lambda: pool.snapshot().active == 1)
    await clock.advance(5.0)
    with pytest.raises(QueryTimedOut, match="interrupted"):
        await slow
    assert await eventually(lambda: pool.snapshot().active == 0)
    snapshot = pool.snapshot()
    assert (snapshot.timeouts, snapshot.errors) == (1, 0)
    # The worker is free again and its cursor still works.
    assert await pool.fetch("SELECT 1") == ((1,),)


async def test_a_query_that_times_out_while_queued_never_runs(database: Path, clock: FakeClock) -> None:
    pool = DuckDBPool(size=1, query_timeout=5.0, clock=clock)
    await asyncio.to_thread(pool.open, database)
    try:
        slow = asyncio.ensure_future(pool.fetch(SLOW_SQL))
        assert await eventually(lambda: pool.snapshot().active == 1)
        queued = asyncio.ensure_future(pool.fetch("SELECT 1"))
        # Both timeouts must be on the clock before it moves: the second one's timer starts a loop turn after
        # the job is counted as queued (advancing first made it wait 5 s from the new time: a flaky pass of SELECT 1).
        assert await eventually(lambda: pool.snapshot().queued == 1 and clock.sleepers == 2)
        await clock.advance(5.0)
        for task in (slow, queued):
            with pytest.raises(QueryTimedOut):
                await task
        assert await eventually(lambda: pool.snapshot().queued == 0 and pool.snapshot().active == 0)
        assert pool.snapshot().completed == 0
        assert pool.snapshot().timeouts == 2
    finally:
        await asyncio.to_thread(pool.close)


async def test_a_bad_query_is_an_error_with_duckdb_s_reason(pool: DuckDBPool) -> None:
    with pytest.raises(QueryFailed, match="no_such_table"):
        await pool.fetch("SELECT * FROM no_such_table")
    assert pool.snapshot().errors == 1


async def test_parameters_are_never_spliced_into_sql(pool: DuckDBPool) -> None:
    hostile = "x'; DROP TABLE numbers; --"
    assert await pool.fetch("SELECT count(*) FROM numbers WHERE label = ?", [hostile]) == ((0,),)
    assert await pool.fetch("SELECT count(*) FROM numbers") == ((1000,),)


async def test_the_snapshot_shows_capacity_while_open_and_none_after(database: Path, clock: FakeClock) -> None:
    pool = DuckDBPool(size=3, query_timeout=5.0, clock=clock)
    assert pool.snapshot().capacity == 0
    await asyncio.to_thread(pool.open, database)
    assert pool.snapshot().name == "duckdb"
    assert pool.snapshot().capacity == 3
    await asyncio.to_thread(pool.close)
    assert pool.snapshot().capacity == 0
    with pytest.raises(PoolClosed):
        await pool.fetch("SELECT 1")


async def test_a_missing_database_is_refused_clearly(tmp_path: Path, clock: FakeClock) -> None:
    pool = DuckDBPool(size=1, query_timeout=5.0, clock=clock)
    with pytest.raises(QueryFailed, match=r"cannot open missing\.duckdb"):
        await asyncio.to_thread(pool.open, tmp_path / "missing.duckdb")


async def test_closing_the_pool_interrupts_a_running_query(database: Path, clock: FakeClock) -> None:
    pool = DuckDBPool(size=1, query_timeout=5.0, clock=clock)
    await asyncio.to_thread(pool.open, database)
    slow = asyncio.ensure_future(pool.fetch(SLOW_SQL))
    assert await eventually(lambda: pool.snapshot().active == 1)
    await asyncio.to_thread(pool.close)  # returns only because the query was interrupted
    with pytest.raises(QueryTimedOut, match="interrupted"):
        await slow
