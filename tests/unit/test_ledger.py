"""The ops ledger: batched writes on the core clock, retention, history, and a locked file."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import duckdb
import pytest

from medops.core.clock import FakeClock, settle
from medops.core.ledger.readers import latest_alerts, latest_limit_changes, latest_requests, metric_buckets
from medops.core.ledger.records import RequestRecord
from medops.core.ledger.writer import DAY, OFF, READ_ONLY, READ_WRITE, Ledger, lock_holder
from medops.core.snapshot import Alert, CoreSnapshot, LimitChange, SlotsSnapshot, SystemSnapshot
from tests.helpers.ledger_holder import HOLDER


@pytest.fixture
def ops_path(tmp_path: Path) -> Path:
    return tmp_path / "ops.duckdb"


@pytest.fixture
async def ledger(ops_path: Path, clock: FakeClock) -> AsyncIterator[Ledger]:
    ledger = Ledger(ops_path, clock, flush_interval=1.0, retention_days=7.0)
    await ledger.start()
    await settle()  # the flusher is now asleep on the fake clock
    yield ledger
    await ledger.stop()


def request(clock: FakeClock, agent: str = "triage", outcome: str = "ok") -> RequestRecord:
    return RequestRecord(at_wall=clock.wall(), agent=agent, priority="high", model="llama-3.1-8b-instant",
                         prompt_tokens=120, completion_tokens=40, latency=0.8, queue_wait=0.05, outcome=outcome,
                         status=200)


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def contents(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


async def flushed(ledger: Ledger, clock: FakeClock, seconds: float = 1.0) -> None:
    """Advance the clock past a flush and wait for the writer thread to finish it."""
    await clock.advance(seconds)
    for _ in range(500):
        if ledger.snapshot().pending == 0:
            await ledger.read("SELECT 1", [], "a read queued behind the flush")  # the writer thread commits first
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the ledger never flushed")


async def test_records_wait_in_memory_until_the_flush_interval(ledger: Ledger, clock: FakeClock) -> None:
    ledger.record_request(request(clock))
    ledger.record_admission("llama-3.1-8b-instant", clock.wall(), 1, 160)
    await clock.advance(0.5)
    assert ledger.snapshot().pending == 2
    assert ledger.snapshot().rows_written == 0
    await flushed(ledger, clock, 0.5)
    assert ledger.snapshot().rows_written == 2


async def test_requests_are_kept_with_figures_only(ledger: Ledger, clock: FakeClock) -> None:
    record = request(clock)
    ledger.record_request(record)
    await flushed(ledger, clock)
    assert await latest_requests(ledger, 10) == (record,)


async def test_admissions_reload_from_a_given_time(ledger: Ledger, clock: FakeClock) -> None:
    early = clock.wall()
    ledger.record_admission("m", early, 1, 100)
    await clock.advance(60)
    ledger.record_admission("m", clock.wall(), 1, 200)
    ledger.record_admission("m", clock.wall(), 0, -50)  # a settlement giving tokens back
    loaded = await asyncio.to_thread(ledger.load_admissions, early + 1)
    assert loaded == [("m", clock.wall(), 1, 200), ("m", clock.wall(), 0, -50)]


async def test_admissions_survive_a_restart(ops_path: Path, clock: FakeClock) -> None:
    first = Ledger(ops_path, clock)
    await first.start()
    first.record_admission("m", clock.wall(), 1, 100)
    await first.stop()
    second = Ledger(ops_path, clock)
    await second.start()
    try:
        assert await asyncio.to_thread(second.load_admissions, 0) == [("m", clock.wall(), 1, 100)]
    finally:
        await second.stop()


async def test_metric_samples_can_be_read_back_by_time_range(ledger: Ledger, ops_path: Path,
                                                              clock: FakeClock) -> None:
    for n in range(5):
        ledger.record_metrics(CoreSnapshot(taken_at=clock.wall(), uptime=n,
                                           system=SystemSnapshot(cpu_percent=10.0 * n, loop_lag_ms=n),
                                           slots=SlotsSnapshot(total=8, used=n)))
        await clock.advance(1)
    start = clock.wall() - 4
    buckets = await metric_buckets(ledger, start, start + 2, 1)
    assert [(b.at_wall, b.cpu_high, b.cpu_low, b.cpu_last, b.samples) for b in buckets] == [
        (start, 10.0, 10.0, 10.0, 1), (start + 1, 20.0, 20.0, 20.0, 1)]
    await ledger.stop()
    assert rows(ops_path, f"SELECT slots_used, slots_total FROM metrics WHERE at_wall >= {start} "
                          f"AND at_wall < {start + 2} ORDER BY at_wall") == [(1, 8), (2, 8)]


async def test_alerts_are_recorded_as_announced(ledger: Ledger, clock: FakeClock) -> None:
    alert = Alert(name="cpu", level="warning", message="CPU at 95% for 5 s", opened_at=clock.wall(), value=95.0,
                  rule="cpu", updated_at=clock.wall())
    ledger.record_alert(alert)
    assert await latest_alerts(ledger, 10) == (alert,)


async def test_limit_changes_are_written_with_the_next_flush(ledger: Ledger, ops_path: Path,
                                                             clock: FakeClock) -> None:
    change = LimitChange(at=clock.wall(), key="io_threads", old="8", new="12", by="console")
    ledger.record_limit_change(change)
    assert ledger.snapshot().pending == 1
    await flushed(ledger, clock)
    assert ledger.snapshot().rows_written == 1
    assert await latest_limit_changes(ledger, 10) == (change,)


async def test_limit_changes_survive_a_restart(ops_path: Path, clock: FakeClock) -> None:
    first = Ledger(ops_path, clock)
    await first.start()
    first.record_limit_change(LimitChange(at=clock.wall(), key="tuner_enabled", old="true", new="false", by="console"))
    await first.stop()
    assert rows(ops_path, "SELECT key, old, new, changed_by FROM limit_changes") == [
        ("tuner_enabled", "true", "false", "console")]


async def test_a_ledger_from_before_limit_changes_gains_their_table(ops_path: Path, clock: FakeClock) -> None:
    with duckdb.connect(str(ops_path)) as con:
        con.execute("CREATE TABLE alerts (at_wall DOUBLE NOT NULL, name VARCHAR NOT NULL, rule VARCHAR, "
                    "level VARCHAR NOT NULL, message VARCHAR NOT NULL, value DOUBLE, opened_at DOUBLE, "
                    "cleared_at DOUBLE, repeats INTEGER)")
    ledger = Ledger(ops_path, clock)
    await ledger.start()
    assert ledger.mode == READ_WRITE
    ledger.record_limit_change(LimitChange(at=clock.wall(), key="io_threads", old="8", new="6", by="console"))
    await ledger.stop()
    assert rows(ops_path, "SELECT key, new FROM limit_changes") == [("io_threads", "6")]


async def test_old_metric_samples_are_pruned_after_the_retention(ops_path: Path, clock: FakeClock) -> None:
    ledger = Ledger(ops_path, clock, flush_interval=1.0, retention_days=1.0)
    await ledger.start()
    try:
        old_wall = clock.wall()
        ledger.record_metrics(CoreSnapshot(taken_at=old_wall, uptime=0))
        ledger.record_admission("m", old_wall, 1, 10)
        await asyncio.to_thread(ledger.load_admissions, 0)  # flushes
        await clock.advance(1.5 * DAY)
        ledger.record_metrics(CoreSnapshot(taken_at=clock.wall(), uptime=1))
        await asyncio.to_thread(ledger.load_admissions, 0)  # flushes and prunes (an hour has passed)
        assert [(b.at_wall, b.samples) for b in await metric_buckets(ledger, 0, clock.wall() + 1, DAY)] == [
            (clock.wall(), 1)]
        # Admissions are kept at least two days: the quota reloads the last 24 h.
        assert await asyncio.to_thread(ledger.load_admissions, 0) == [("m", old_wall, 1, 10)]
    finally:
        await ledger.stop()


async def test_stop_writes_what_is_still_buffered(ops_path: Path, clock: FakeClock) -> None:
    ledger = Ledger(ops_path, clock)
    await ledger.start()
    ledger.record_request(request(clock))
    await ledger.stop()
    assert rows(ops_path, "SELECT agent, outcome FROM requests") == [("triage", "ok")]
    assert ledger.snapshot().mode == OFF


KILLED_WRITER = textwrap.dedent("""
    import asyncio, os, signal, sys
    from pathlib import Path
    from medops.core.clock import SystemClock
    from medops.core.ledger.records import RequestRecord
    from medops.core.ledger.writer import Ledger

    async def main():
        ledger = Ledger(Path(sys.argv[1]), SystemClock(), flush_interval=0.05)
        await ledger.start()
        for n in range(3):
            ledger.record_request(RequestRecord(float(n), "triage", "high", "m", 1, 1, 0.1, 0.0, "ok"))
        while ledger.snapshot().rows_written < 3:
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)  # no stop(), no close: as if the machine died

    asyncio.run(main())
""")


def test_a_killed_process_keeps_what_it_flushed(ops_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(ops_path)], timeout=60,
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert rows(ops_path, "SELECT count(*) FROM requests") == [(3,)]


@pytest.fixture
def holder_factory(ops_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def hold(mode: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(ops_path), mode], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "holding"
        return process

    yield hold
    for process in started:
        if process.stdin:
            process.stdin.close()
        process.wait(timeout=30)


async def make_ledger_file(ops_path: Path, clock: FakeClock) -> None:
    ledger = Ledger(ops_path, clock)
    await ledger.start()
    ledger.record_request(request(clock))
    await ledger.stop()


async def test_a_ledger_locked_by_another_process_runs_off_and_names_it(
        ops_path: Path, clock: FakeClock, holder_factory: object) -> None:
    await make_ledger_file(ops_path, clock)
    before = contents(ops_path)
    holder = holder_factory("rw")  # type: ignore[operator]
    ledger = Ledger(ops_path, clock)
    await ledger.start()
    try:
        snapshot = ledger.snapshot()
        assert snapshot.mode == OFF
        assert f"process {holder.pid}" in snapshot.detail
        assert "MEDOPS_DATA_DIR" in snapshot.detail
        ledger.record_request(request(clock))
        ledger.record_admission("m", clock.wall(), 1, 1)
        assert ledger.snapshot().pending == 0
        assert await asyncio.to_thread(ledger.load_admissions, 0) == []
    finally:
        await ledger.stop()
    holder.stdin.close()
    holder.wait(timeout=30)
    assert contents(ops_path) == before


async def test_a_ledger_held_read_only_elsewhere_is_read_only_here(
        ops_path: Path, clock: FakeClock, holder_factory: object) -> None:
    await make_ledger_file(ops_path, clock)
    holder = holder_factory("ro")  # type: ignore[operator]
    ledger = Ledger(ops_path, clock)
    await ledger.start()
    try:
        assert ledger.snapshot().mode == READ_ONLY
        assert f"process {holder.pid}" in ledger.snapshot().detail
        assert len(await latest_requests(ledger, 10)) == 1
        ledger.record_request(request(clock))
        assert ledger.snapshot().pending == 0
    finally:
        await ledger.stop()


async def test_a_file_that_is_not_a_ledger_is_left_untouched(ops_path: Path, clock: FakeClock) -> None:
    write(ops_path, b"not a database" * 64)
    ledger = Ledger(ops_path, clock)
    await ledger.start()
    try:
        assert ledger.snapshot().mode == OFF
        assert "left untouched" in ledger.snapshot().detail
    finally:
        await ledger.stop()
    assert contents(ops_path) == b"not a database" * 64


async def test_a_fresh_ledger_is_read_write(ledger: Ledger) -> None:
    assert ledger.snapshot().mode == READ_WRITE
    assert ledger.path.exists()


def test_duckdb_s_lock_message_names_the_holder() -> None:
    message = ('IO Error: Could not set lock on file "/d/ops.duckdb": Conflicting lock is held in '
               '/usr/bin/python3.11 (PID 4242) by user ops. See also https://duckdb.org/docs/current/connect/concurrency')
    holder = lock_holder(message)
    assert holder is not None
    assert (holder.pid, holder.program, holder.readers_allowed) == (4242, "/usr/bin/python3.11", False)
    assert lock_holder("IO Error: disk full") is None


# Every column `requests` may have, with its type: figures, short labels and ids. A text column beyond these
# could hold a prompt, so adding one must be a decision made here, in the open.
REQUEST_COLUMNS = {
    "at_wall": "DOUBLE", "agent": "VARCHAR", "priority": "VARCHAR", "model": "VARCHAR", "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER", "latency": "DOUBLE", "queue_wait": "DOUBLE", "outcome": "VARCHAR",
    "status": "INTEGER", "attempts": "INTEGER", "request_id": "VARCHAR",
    # A gateway key's name (a checked label), Groq's finish reason and tier: short labels; tool calls: a count.
    "client": "VARCHAR", "finish_reason": "VARCHAR", "tool_calls": "INTEGER", "cached_tokens": "INTEGER",
    "reasoning_tokens": "INTEGER", "service_tier": "VARCHAR",
}


async def test_the_requests_table_has_no_column_that_could_hold_prompt_text(ledger: Ledger, ops_path: Path) -> None:
    await ledger.stop()
    columns = dict(rows(ops_path, "SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = 'requests' ORDER BY ordinal_position"))
    assert columns == REQUEST_COLUMNS
    assert set(RequestRecord.__dataclass_fields__) == set(REQUEST_COLUMNS)  # the record has nothing more to write
