"""The ops ledger's writer: `ops.duckdb`, the history of Groq requests, quota admissions, metrics, alerts and
limit changes. What reads it back is in readers.py and the three history read-models.

One process owns it read-write. Callers on the event loop only append to an
in-memory buffer; a single writer thread (the only one touching the connection)
writes the buffer every `ledger_flush_interval` seconds of the core clock, so a
killed process loses at most that much. Metric samples and admissions older
than `metrics_retention_days` are pruned. A second medops on the same data
folder finds the file locked: it names the process holding it and runs with the
ledger read-only (when the holder allows readers) or off, never touching it.
This run's latest requests and alert announcements are kept in memory as well,
so the history can show them when the file cannot.
Prompt text never reaches the ledger: `RequestRecord` carries figures only, and a
limit change carries a setting's key and values, which are configuration, not patient data.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb

from medops.core.clock import Clock
from medops.core.errors import LedgerError
from medops.core.ledger.records import RequestRecord
from medops.core.snapshot import Alert, CoreSnapshot, LedgerMode, LedgerSnapshot, LimitChange

DAY = 86_400.0
PRUNE_EVERY = 3_600.0  # seconds between retention sweeps
MAX_PENDING = 100_000  # rows buffered at most while writes fail; the oldest go first
ADMISSIONS_KEPT_DAYS = 2.0  # the quota reloads the last 24 h: keep at least this much

READ_WRITE: Final = "read-write"
READ_ONLY: Final = "read-only"
OFF: Final = "off"
INSTANCE_FILES = 16  # fleet members on one data folder: ops.duckdb, then ops-2 .. ops-17

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    at_wall DOUBLE NOT NULL, agent VARCHAR NOT NULL, priority VARCHAR NOT NULL, model VARCHAR NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency DOUBLE NOT NULL,
    queue_wait DOUBLE NOT NULL, outcome VARCHAR NOT NULL, status INTEGER);
CREATE TABLE IF NOT EXISTS admissions (
    model VARCHAR NOT NULL, at_wall DOUBLE NOT NULL, requests INTEGER NOT NULL, tokens BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (
    at_wall DOUBLE NOT NULL, cpu_percent DOUBLE, process_cpu DOUBLE, rss_bytes BIGINT, memory_percent DOUBLE,
    loop_lag_ms DOUBLE, queue_depth INTEGER, in_flight INTEGER, slots_used INTEGER, slots_total INTEGER,
    cache_hit_rate DOUBLE, documents_running INTEGER, alerts_open INTEGER);
CREATE TABLE IF NOT EXISTS alerts (
    at_wall DOUBLE NOT NULL, name VARCHAR NOT NULL, rule VARCHAR, level VARCHAR NOT NULL, message VARCHAR NOT NULL,
    value DOUBLE, opened_at DOUBLE, cleared_at DOUBLE, repeats INTEGER);
CREATE TABLE IF NOT EXISTS limit_changes (
    at_wall DOUBLE NOT NULL, key VARCHAR NOT NULL, old VARCHAR NOT NULL, new VARCHAR NOT NULL,
    changed_by VARCHAR NOT NULL);
ALTER TABLE requests ADD COLUMN IF NOT EXISTS attempts INTEGER;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS request_id VARCHAR;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS client VARCHAR;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS finish_reason VARCHAR;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS tool_calls INTEGER;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS cached_tokens INTEGER;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS reasoning_tokens INTEGER;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS service_tier VARCHAR;
"""
TABLES = ("requests", "admissions", "metrics", "alerts", "limit_changes")
THIS_RUN_KEPT = 1_000  # latest requests and alert announcements kept in memory, for history the file lacks

_PID = re.compile(r"PID (\d+)")
_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")

T = TypeVar("T")


class LedgerUnavailable(LedgerError):
    """The ledger is off (locked by another process, unreadable, or stopped)."""


@dataclass(frozen=True)
class LockHolder:
    """The process DuckDB says holds a database file's lock."""

    pid: int | None
    program: str
    readers_allowed: bool  # the holder opened it read-only, so we may too


def lock_holder(message: str) -> LockHolder | None:
    """Parse DuckDB's lock-conflict error; None if `message` is not one."""
    if "Could not set lock" not in message:
        return None
    holder = _HOLDER.search(message)
    pid = _PID.search(message)
    return LockHolder(pid=int(pid.group(1)) if pid else None, program=holder.group(1) if holder else "",
                      readers_allowed="read-only mode" in message)


def metric_row(snapshot: CoreSnapshot) -> tuple[Any, ...]:
    """The columns of the `metrics` table taken from one snapshot."""
    system = snapshot.system
    return (snapshot.taken_at, system.cpu_percent, system.process_cpu, system.rss_bytes, system.memory_percent,
            system.loop_lag_ms, sum(q.depth for q in snapshot.scheduler.queues), snapshot.scheduler.in_flight,
            snapshot.slots.used, snapshot.slots.total, snapshot.cache.hit_rate, snapshot.documents.running,
            sum(1 for a in snapshot.alerts if a.cleared_at is None))


class Ledger:
    """`ops.duckdb` behind one writer thread; implements AdmissionStore and RequestRecorder."""

    def __init__(self, path: Path, clock: Clock, flush_interval: float = 1.0, retention_days: float = 7.0,
                 *, file_per_instance: bool = False) -> None:
        """`file_per_instance`: when another process holds `path`, record to the first free `ops-N.duckdb`
        beside it instead of running without a ledger (fleet members sharing a data folder)."""
        self.path = path
        self._file_per_instance = file_per_instance
        self._clock = clock
        self._flush_interval = flush_interval
        self._retention = retention_days * DAY
        self._executor: ThreadPoolExecutor | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None  # used only on the writer thread
        self._flusher: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # guards the buffers and counters
        self._pending: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLES}
        self._mode: LedgerMode = OFF
        self._detail = "not started"
        self._rows_written = 0
        self._dropped = 0
        self._last_prune: float | None = None
        # Whatever the mode: history shows them when the file cannot (off, read-only, a write failing).
        self._this_run_requests: collections.deque[RequestRecord] = collections.deque(maxlen=THIS_RUN_KEPT)
        self._this_run_alerts: collections.deque[Alert] = collections.deque(maxlen=THIS_RUN_KEPT)

    @property
    def mode(self) -> LedgerMode:
        return self._mode

    @property
    def recording(self) -> bool:
        return self._mode == READ_WRITE

    # Lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the ledger on its writer thread and start flushing; never raises for a locked file."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._mode, self._detail = await self._on_writer(self._open)
        if self._mode == READ_WRITE:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every_interval(), name="ledger-flush")

    async def stop(self) -> None:
        """Write what is buffered, close the file and the writer thread; safe to call twice."""
        executor = self._executor
        if executor is None:
            return
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(LedgerError):
            await self._on_writer(self._flush)
        await self._on_writer(self._close)
        executor.shutdown(wait=True)
        self._executor = None
        self._mode, self._detail = OFF, "stopped"

    def _open(self) -> tuple[LedgerMode, str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            holder = lock_holder(str(exc))
            if holder is None:
                return OFF, (f"{self.path.name} cannot be opened ({exc}); it is left untouched and nothing is "
                             f"recorded; move it aside to start a fresh ledger")
            beside = self._free_instance_file() if self._file_per_instance else None
            if beside is None:
                return self._open_beside(holder)
            self.path, connection = beside
        try:
            connection.execute(SCHEMA)
        except duckdb.Error as exc:
            connection.close()
            return OFF, (f"{self.path.name} is not a medops ledger ({exc}); it is left untouched and nothing is "
                         f"recorded; move it aside to start a fresh ledger")
        self._connection = connection
        return READ_WRITE, f"recording to {self.path}"

    def _free_instance_file(self) -> tuple[Path, duckdb.DuckDBPyConnection] | None:
        """The first of ops-2.duckdb, ops-3.duckdb, ... that no other process holds, opened read-write."""
        for n in range(2, 2 + INSTANCE_FILES):
            path = self.path.with_name(f"{self.path.stem}-{n}{self.path.suffix}")
            try:
                return path, duckdb.connect(str(path))
            except duckdb.Error as exc:
                if lock_holder(str(exc)) is None:
                    return None
        return None

    def _open_beside(self, holder: LockHolder) -> tuple[LedgerMode, str]:
        """Another process holds the file: read it if DuckDB lets us, else run without it."""
        who = f"process {holder.pid}" if holder.pid else "another process"
        if holder.program:
            who += f" ({holder.program})"
        if holder.readers_allowed:
            with contextlib.suppress(duckdb.Error):
                self._connection = duckdb.connect(str(self.path), read_only=True)
                return READ_ONLY, (f"{self.path.name} is opened read-only by {who}; history can be read but "
                                   f"nothing is recorded")
        return OFF, (f"{self.path.name} is locked by {who}, probably another medops on the same data folder; "
                     f"this one runs without a ledger: nothing is recorded and today's quota usage is not "
                     f"reloaded. Stop the other one, or give this one its own MEDOPS_DATA_DIR")

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def _on_writer(self, work: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise LedgerUnavailable("the ledger is not running; start the core first")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    async def _flush_every_interval(self) -> None:
        while True:
            await self._clock.sleep(self._flush_interval)
            with contextlib.suppress(LedgerError):
                await self._on_writer(self._flush)

    # Recording (loop side: buffer only) ------------------------------------------------------------

    def _buffer(self, table: str, row: tuple[Any, ...]) -> None:
        if not self.recording:
            return
        with self._lock:
            rows = self._pending[table]
            rows.append(row)
            if len(rows) > MAX_PENDING:
                del rows[0]
                self._dropped += 1

    def record_request(self, record: RequestRecord) -> None:
        """Buffer one finished Groq request (figures only, never prompt text)."""
        with self._lock:
            self._this_run_requests.append(record)
        self._buffer("requests", (record.at_wall, record.agent, record.priority, record.model,
                                  record.prompt_tokens, record.completion_tokens, record.latency,
                                  record.queue_wait, record.outcome, record.status, record.attempts,
                                  record.request_id, record.client, record.finish_reason, record.tool_calls,
                                  record.cached_tokens, record.reasoning_tokens, record.service_tier))

    def record_admission(self, model: str, at_wall: float, requests: int, tokens: int) -> None:
        """Buffer one quota admission (or a settlement, with negative tokens)."""
        self._buffer("admissions", (model, at_wall, requests, tokens))

    def record_metrics(self, snapshot: CoreSnapshot) -> None:
        """Buffer one tick's sample taken from the core's snapshot."""
        self._buffer("metrics", metric_row(snapshot))

    def record_alert(self, alert: Alert) -> None:
        """Buffer one alert announcement (open, repeat, escalation or clear)."""
        at_wall = alert.updated_at or alert.opened_at
        with self._lock:
            self._this_run_alerts.append(dataclasses.replace(alert, updated_at=at_wall))  # as a read returns it
        self._buffer("alerts", (at_wall, alert.name, alert.rule, alert.level,
                                alert.message, alert.value, alert.opened_at, alert.cleared_at, alert.repeats))

    def this_run_requests(self) -> tuple[RequestRecord, ...]:
        """This run's latest THIS_RUN_KEPT requests, oldest first, recorded or not."""
        with self._lock:
            return tuple(self._this_run_requests)

    def this_run_alerts(self) -> tuple[Alert, ...]:
        """This run's latest THIS_RUN_KEPT alert announcements, oldest first, recorded or not."""
        with self._lock:
            return tuple(self._this_run_alerts)

    def record_limit_change(self, change: LimitChange) -> None:
        """Buffer one limit changed while running (key, old and new value as shown, who changed it)."""
        self._buffer("limit_changes", (change.at, change.key, change.old, change.new, change.by))

    # Writer thread ---------------------------------------------------------------------------------

    def _flush(self) -> int:
        """Write every buffered row in one transaction; on failure keep them for the next try."""
        connection = self._connection
        if connection is None or self._mode != READ_WRITE:
            return 0
        with self._lock:
            batch = {table: rows for table, rows in self._pending.items() if rows}
            self._pending = {table: [] for table in TABLES}
        written = sum(len(rows) for rows in batch.values())
        try:
            connection.begin()
            for table, rows in batch.items():
                appender = connection.appender(table)
                appender.append_rows(rows)
                appender.flush()
            self._prune(connection)
            connection.commit()
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                connection.rollback()
            with self._lock:
                for table, rows in batch.items():
                    self._pending[table][:0] = rows
                    excess = len(self._pending[table]) - MAX_PENDING
                    if excess > 0:
                        del self._pending[table][:excess]
                        self._dropped += excess
            self._detail = f"writing to {self.path.name} failed ({exc}); retrying every flush"
            raise LedgerError(self._detail) from exc
        with self._lock:
            self._rows_written += written
        self._detail = f"recording to {self.path}"
        return written

    def _prune(self, connection: duckdb.DuckDBPyConnection) -> None:
        now = self._clock.wall()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        connection.execute("DELETE FROM metrics WHERE at_wall < $1", [now - self._retention])
        kept = max(self._retention, ADMISSIONS_KEPT_DAYS * DAY)
        connection.execute("DELETE FROM admissions WHERE at_wall < $1", [now - kept])

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._connection is None:
            raise LedgerUnavailable(f"the ledger is {self._mode}: {self._detail}")
        with contextlib.suppress(LedgerError):
            self._flush()  # so a read sees what was recorded just before it
        return self._connection.execute(sql, list(params)).fetchall()

    # Reading (readers.py holds the queries) ------------------------------------------------------------

    async def read(self, sql: str, params: Sequence[Any], what: str) -> list[tuple[Any, ...]]:
        """Rows of one query, run on the writer thread after a flush; LedgerUnavailable when off, LedgerError if
        it fails (`what` names the rows in the message)."""
        try:
            return await self._on_writer(self._query, sql, params)
        except duckdb.Error as exc:
            raise LedgerError(f"reading {what} from {self.path.name} failed ({exc}); "
                              f"`medops doctor` checks the data folder") from exc


    def load_admissions(self, since_wall: float) -> list[tuple[str, float, int, int]]:
        """Every (model, at_wall, requests, tokens) at or after `since_wall`. Blocking: call it off the loop."""
        if self._executor is None or self._connection is None:
            return []
        rows = self._executor.submit(self._query, "SELECT model, at_wall, requests, tokens FROM admissions "
                                                  "WHERE at_wall >= $1 ORDER BY at_wall", [since_wall]).result()
        return [(str(m), float(at), int(r), int(t)) for m, at, r, t in rows]

    def snapshot(self) -> LedgerSnapshot:
        """Mode, what it means, rows written and rows waiting for the next flush."""
        with self._lock:
            pending = sum(len(rows) for rows in self._pending.values())
            detail = self._detail
            if self._dropped:
                detail += f"; {self._dropped} rows dropped while writes failed"
            return LedgerSnapshot(mode=self._mode, detail=detail, rows_written=self._rows_written, pending=pending)
