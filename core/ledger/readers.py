"""Reading the ops ledger back: the queries behind the history read-models, run on the ledger's writer thread.

Each read first writes what is buffered (`Ledger.read`), so it sees what was recorded just before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medops.core.ledger.records import RequestRecord
from medops.core.ledger.writer import Ledger
from medops.core.snapshot import Alert, LimitChange

# Newest first; rowid breaks ties in the order they were written ($1: how many, $2: a key or NULL for all).
LATEST_LIMIT_CHANGES = ("SELECT at_wall, key, old, new, changed_by FROM limit_changes "
                        "WHERE $2::VARCHAR IS NULL OR key = $2 ORDER BY at_wall DESC, rowid DESC LIMIT $1")
# Newest first at or before $2 (NULL: any time), only $3's model and $4's agent when given ($1: how many).
# SELECT *: a file opened read-only may predate the attempts and request_id columns.
LATEST_REQUESTS = ("SELECT * FROM requests WHERE ($2::DOUBLE IS NULL OR at_wall <= $2) "
                   "AND ($3::VARCHAR IS NULL OR model = $3) AND ($4::VARCHAR IS NULL OR agent = $4) "
                   "ORDER BY at_wall DESC, rowid DESC LIMIT $1")
LATEST_ALERTS = ("SELECT name, level, message, opened_at, value, cleared_at, rule, repeats, at_wall FROM alerts "
                 "WHERE $2::DOUBLE IS NULL OR at_wall <= $2 ORDER BY at_wall DESC, rowid DESC LIMIT $1")
# Per bucket of $3 seconds aligned to multiples of it, oldest first: the samples' mean time, the highest cpu and
# memory, and how many samples ($1 <= at_wall < $2). metric_history.py says why highest, not mean.
# Per bucket: the highest (what a graph shows: spikes), the lowest, and the value of its latest sample.
METRIC_BUCKETS = ("SELECT avg(at_wall), max(cpu_percent), max(memory_percent), min(cpu_percent), "
                  "min(memory_percent), arg_max(cpu_percent, at_wall), arg_max(memory_percent, at_wall), count(*) "
                  "FROM metrics WHERE at_wall >= $1 AND at_wall < $2 GROUP BY floor(at_wall / $3) ORDER BY 1")


def request_record(row: Sequence[Any]) -> RequestRecord:
    """A `requests` row as a record; columns a file from an older medops lacks read as 0 and ""."""
    at_wall, agent, priority, model, prompt_tokens, completion_tokens, latency, queue_wait, outcome, status = row[:10]
    attempts, request_id, client, finish, tool_calls, cached, reasoning, tier = (*row[10:18], *(None,) * 8)[:8]
    return RequestRecord(at_wall, agent, priority, model, prompt_tokens, completion_tokens, latency, queue_wait,
                         outcome, status, attempts=attempts or 0, request_id=request_id or "", client=client or "",
                         finish_reason=finish or "", tool_calls=tool_calls or 0, cached_tokens=cached or 0,
                         reasoning_tokens=reasoning or 0, service_tier=tier or "")


def alert_row(row: Sequence[Any]) -> Alert:
    """An `alerts` row (name, level, message, opened_at, value, cleared_at, rule, repeats, at_wall) as an Alert."""
    return Alert(name=row[0], level=row[1], message=row[2], opened_at=row[3], value=row[4], cleared_at=row[5],
                 rule=row[6] or "", repeats=row[7] or 0, updated_at=row[8])


async def latest_requests(ledger: Ledger, limit: int, at_or_before: float | None = None, model: str | None = None,
                          agent: str | None = None) -> tuple[RequestRecord, ...]:
    """The `limit` latest recorded requests at or before a wall time, newest first; LedgerUnavailable if off."""
    rows = await ledger.read(LATEST_REQUESTS, [limit, at_or_before, model, agent], "requests")
    return tuple(request_record(row) for row in rows)


async def latest_alerts(ledger: Ledger, limit: int, at_or_before: float | None = None) -> tuple[Alert, ...]:
    """The `limit` latest alert announcements at or before a wall time, newest first; LedgerUnavailable if off."""
    rows = await ledger.read(LATEST_ALERTS, [limit, at_or_before], "alerts")
    return tuple(alert_row(row) for row in rows)


async def latest_limit_changes(ledger: Ledger, limit: int, key: str | None = None) -> tuple[LimitChange, ...]:
    """The `limit` latest recorded limit changes (only `key`'s if given), newest first; LedgerUnavailable if off."""
    rows = await ledger.read(LATEST_LIMIT_CHANGES, [limit, key], "limit changes")
    return tuple(LimitChange(*row) for row in rows)


@dataclass(frozen=True)
class MetricBucket:
    """One bucket of metric samples: when (their mean time), highest, lowest and latest, and how many."""

    at_wall: float
    cpu_high: float | None
    memory_high: float | None
    cpu_low: float | None
    memory_low: float | None
    cpu_last: float | None
    memory_last: float | None
    samples: int


async def metric_buckets(ledger: Ledger, start_wall: float, end_wall: float,
                         bucket_seconds: float) -> list[MetricBucket]:
    """One `MetricBucket` per bucket that has samples, oldest first; LedgerUnavailable if off."""
    rows = await ledger.read(METRIC_BUCKETS, [start_wall, end_wall, float(bucket_seconds)], "metrics")
    return [MetricBucket(float(at), cpu_high, memory_high, cpu_low, memory_low, cpu_last, memory_last, int(count))
            for at, cpu_high, memory_high, cpu_low, memory_low, cpu_last, memory_last, count in rows]
