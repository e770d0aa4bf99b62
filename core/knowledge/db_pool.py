"""`DuckDBPool`: one DuckDB database, one cursor per worker thread, queries off the loop.

DuckDB 2.0 refuses a connection shared across threads and a second `execute` on a
connection empties the first one's result, so the reference design (N read-only
connections used on the event loop) both blocks the loop and races. Here one
database instance serves `size` worker threads, each with its own `con.cursor()`;
a query is executed *and fetched* in its worker, and the loop only awaits a
future. A query still running after `query_timeout` seconds of the core clock is
interrupted (`cursor.interrupt()`) and reported as a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from medops.core.clock import Clock
from medops.core.errors import KnowledgeError
from medops.core.knowledge.query_cache import Rows, frozen_rows
from medops.core.snapshot import PoolSnapshot
from medops.core.waits import RecentWaits

_WAIT_SAMPLES = 1_000  # recent queue waits kept for the p50/p95 figures


class PoolClosed(KnowledgeError):
    """A query reached the DuckDB pool before it was opened or after it closed."""


class QueryTimedOut(KnowledgeError):
    """A query ran past `db_query_timeout` and was interrupted."""


class QueryFailed(KnowledgeError):
    """DuckDB refused or failed a query."""


@dataclass(eq=False)
class _Job:
    """One query on its way through the pool; `future` carries the rows back."""

    sql: str
    params: tuple[Any, ...]
    submitted: float
    future: concurrent.futures.Future[Rows] = field(default_factory=concurrent.futures.Future)
    cursor: duckdb.DuckDBPyConnection | None = None  # the worker's cursor while it runs
    finished: bool = False


_STOP = object()


class DuckDBPool:
    """A fixed set of worker threads, each owning one cursor on a shared database."""

    def __init__(self, size: int, query_timeout: float, clock: Clock, name: str = "duckdb") -> None:
        if size < 1:
            raise ValueError("a DuckDB pool needs at least one worker")
        self.name = name
        self._size = size
        self._timeout = query_timeout
        self._clock = clock
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards the counters and each job's cursor/finished
        self._active = 0
        self._queued = 0
        self._completed = 0
        self._errors = 0
        self._timeouts = 0
        self._waits = RecentWaits(_WAIT_SAMPLES)
        self._running: set[_Job] = set()

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    def open(self, path: Path, *, read_only: bool = True) -> None:
        """Open the database and start the workers. Blocking: call it off the loop."""
        if self._connection is not None:
            return
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            raise QueryFailed(f"cannot open {path.name}: {exc}") from exc
        self._connection = connection
        for number in range(self._size):
            # Each worker makes its own cursor in its own thread: cursors are never shared.
            thread = threading.Thread(target=self._work, args=(connection,), name=f"{self.name}-{number}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Interrupt running queries, let the workers drain, then close the database. Blocking."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with self._lock:
            for job in self._running:
                if job.cursor is not None:
                    job.cursor.interrupt()
        for _ in self._threads:
            self._jobs.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        connection.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """All rows of one parameterised query, run and fetched in a worker thread."""
        if self._connection is None:
            raise PoolClosed("the knowledge database is not open yet (or was closed); start the core first")
        job = _Job(sql, tuple(params), self._clock.monotonic())
        with self._lock:
            self._queued += 1
        self._jobs.put(job)
        result = asyncio.wrap_future(job.future)
        timer: asyncio.Future[Any] = asyncio.ensure_future(self._clock.sleep(self._timeout))
        waiting: set[asyncio.Future[Any]] = {result, timer}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._abandon(job, result)
            raise
        finally:
            timer.cancel()
        if result.done():
            return result.result()
        self._abandon(job, result)
        with self._lock:
            self._timeouts += 1
        raise QueryTimedOut(f"a knowledge query took longer than {self._timeout:g} s and was interrupted; "
                            f"try a narrower search or raise db_query_timeout")

    def _abandon(self, job: _Job, result: asyncio.Future[Rows]) -> None:
        """Stop waiting for `job`: drop it if still queued, interrupt it if running."""
        # The job itself is cancelled here, at once: through the asyncio wrapper alone the cancel reaches it a
        # loop turn later, and a worker freed meanwhile ran the abandoned query (seen in a loaded CI run).
        # Cancelling the wrapper too means a late result or error is never left unretrieved.
        job.future.cancel()
        result.cancel()
        with self._lock:
            if job.cursor is not None and not job.finished:
                job.cursor.interrupt()

    def _work(self, connection: duckdb.DuckDBPyConnection) -> None:
        cursor = connection.cursor()
        try:
            while True:
                job = self._jobs.get()
                if not isinstance(job, _Job):
                    return
                self._run(cursor, job)
        finally:
            cursor.close()

    def _run(self, cursor: duckdb.DuckDBPyConnection, job: _Job) -> None:
        started = self._clock.monotonic()
        with self._lock:
            self._queued -= 1
            if not job.future.set_running_or_notify_cancel():
                return  # its caller gave up while it was queued
            self._active += 1
            self._waits.add(started - job.submitted)
            job.cursor = cursor
            self._running.add(job)
        outcome: Rows | BaseException
        try:
            outcome = frozen_rows(cursor.execute(job.sql, job.params).fetchall())
        except duckdb.InterruptException:
            outcome = QueryTimedOut("the query was interrupted: it ran past its timeout or the core is stopping")
        except duckdb.Error as exc:
            outcome = QueryFailed(f"the knowledge database refused a query: {exc}")
        with self._lock:
            job.finished = True
            self._running.discard(job)
            self._active -= 1
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, QueryTimedOut):
                    self._errors += 1
            else:
                self._completed += 1
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    def snapshot(self) -> PoolSnapshot:
        """Workers in use, queries waiting, wait percentiles and counts."""
        with self._lock:
            p50, p95 = self._waits.percentiles()
            return PoolSnapshot(name=self.name, capacity=self._size if self.is_open else 0, active=self._active,
                                queued=self._queued, completed=self._completed, errors=self._errors,
                                timeouts=self._timeouts, wait_p50=p50, wait_p95=p95)
