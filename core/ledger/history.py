"""Request and alert history across runs: pages of the ledger's record, newest first.

The ledger's rows are merged with this run's latest rows kept in memory as every
history read-model does (across_runs.py). Each page ends with a `Before` mark that the next older page
starts from, so paging back neither skips nor repeats rows sharing one wall time.
Request rows carry figures only; prompt text is never in the ledger or here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from medops.core.ledger.across_runs import HistoryRefused, across_runs
from medops.core.ledger.readers import latest_alerts, latest_requests
from medops.core.ledger.records import RequestRecord
from medops.core.ledger.writer import OFF, THIS_RUN_KEPT, Ledger
from medops.core.snapshot import Alert

MAX_PAGE = 1_000  # rows one page may ask for
KEPT = f"this run's latest {THIS_RUN_KEPT} are kept in memory"

T = TypeVar("T")


@dataclass(frozen=True)
class Before:
    """Where an older page starts: rows at or before `wall`, less the first `skip` at exactly `wall` (already shown)."""

    wall: float
    skip: int = 0


@dataclass(frozen=True)
class RequestHistory:
    """A page of finished Groq requests, newest first, and where the next older page starts."""

    requests: tuple[RequestRecord, ...]
    older: Before | None  # None: nothing older is known
    earlier_runs: bool  # False: the ledger could not be read, so only this run's latest requests are listed
    note: str = ""  # why earlier runs are missing, or why this run's requests are not being recorded; safe to show


@dataclass(frozen=True)
class AlertHistory:
    """A page of alert announcements (opened, repeated or escalated, cleared), newest first."""

    alerts: tuple[Alert, ...]  # `updated_at` is when each announcement was made
    older: Before | None
    earlier_runs: bool
    note: str = ""


def check_page(limit: int) -> None:
    """Refuse a page size outside 1..MAX_PAGE with a message saying what is allowed."""
    if not 1 <= limit <= MAX_PAGE:
        raise HistoryRefused(f"asked for a page of {limit} rows: ask for 1 to {MAX_PAGE}")


def one_page(rows: Sequence[T], at: Callable[[T], float], before: Before | None,
             limit: int) -> tuple[tuple[T, ...], Before | None]:
    """The first `limit` of `rows` (newest first, none after `before.wall`) past `before`, and the next mark."""
    start = 0
    if before is not None:
        while start < min(before.skip, len(rows)) and at(rows[start]) == before.wall:
            start += 1
    shown = tuple(rows[start:start + limit])
    if len(rows) <= start + limit or not shown:
        return shown, None
    oldest = at(shown[-1])
    at_oldest = sum(1 for row in shown if at(row) == oldest)
    if before is not None and oldest == before.wall:
        at_oldest += start  # the rows at this instant shown on earlier pages
    return shown, Before(oldest, at_oldest)


def wanted_before(rows: Iterable[T], at: Callable[[T], float], before: Before | None) -> list[T]:
    """The rows not after `before.wall` (all of them without a mark)."""
    return [row for row in rows if before is None or at(row) <= before.wall]


def request_at(record: RequestRecord) -> float:
    return record.at_wall


def alert_at(alert: Alert) -> float:
    return alert.updated_at


async def request_page(ledger: Ledger, before: Before | None, limit: int, model: str | None = None,
                       agent: str | None = None) -> RequestHistory:
    """A page of requests (only `model`'s and `agent`'s if given) across runs, as far as `ledger` can tell."""
    check_page(limit)
    this_run = wanted_before((r for r in ledger.this_run_requests()
                              if (model is None or r.model == model) and (agent is None or r.agent == agent)),
                             request_at, before)
    read = None if ledger.mode == OFF else lambda: latest_requests(
        ledger, fetch_size(before, limit), before.wall if before else None, model, agent)
    rows, earlier_runs, note = await across_runs(ledger, read, this_run, request_at, "requests", KEPT)
    shown, older = one_page(rows, request_at, before, limit)
    return RequestHistory(shown, older, earlier_runs, note)


async def alert_page(ledger: Ledger, before: Before | None, limit: int) -> AlertHistory:
    """A page of alert announcements across runs, as far as `ledger` can tell."""
    check_page(limit)
    this_run = wanted_before(ledger.this_run_alerts(), alert_at, before)
    read = None if ledger.mode == OFF else lambda: latest_alerts(ledger, fetch_size(before, limit),
                                                                 before.wall if before else None)
    rows, earlier_runs, note = await across_runs(ledger, read, this_run, alert_at, "alerts", KEPT)
    shown, older = one_page(rows, alert_at, before, limit)
    return AlertHistory(shown, older, earlier_runs, note)


def fetch_size(before: Before | None, limit: int) -> int:
    """Rows to ask the ledger for: the page, the rows skipped at its start, and one to tell if there are more.

    Enough: a row of this run that the ledger holds but did not return is no newer than the last row it did
    return, so after the merge it sorts past every row the page can use.
    """
    return limit + (before.skip if before else 0) + 1
