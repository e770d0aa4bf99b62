"""CPU and memory history from the ledger, boiled down in SQL to a few hundred points for a graph.

The monitor's ring holds the last `history_seconds` in memory; graphs over longer
spans (hours, days) read the ledger's `metrics` table instead, on the ledger's own
thread (the monitor's ring, not a merge, holds this run's latest: see across_runs.py for the
other read-models). Each point is one bucket of a round width (1 s, 5 min, 30 min...) aligned to
multiples of that width since the epoch, so a graph read again 30 s later keeps its
buckets where they were instead of shifting every value a little. A bucket shows the
highest CPU and memory in it, not the mean: an ops graph is read for spikes, and a
mean over five minutes flattens the 20 s at 100 % that opened an alert into a calm
line. With the ledger off the history says so, instead of passing for "nothing happened".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medops.core.errors import LedgerError
from medops.core.ledger.across_runs import HistoryRefused
from medops.core.ledger.readers import metric_buckets
from medops.core.ledger.writer import OFF, Ledger

MAX_POINTS = 5_000  # points one read may ask for
ROUND_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400)
DAY = 86_400


@dataclass(frozen=True)
class MetricPoint:
    """One bucket of metric samples."""

    at_wall: float  # the mean time of the bucket's samples
    cpu_percent: float  # the highest in the bucket
    memory_percent: float  # the highest in the bucket
    cpu_lowest: float  # the lowest in the bucket
    memory_lowest: float
    cpu_last: float  # the bucket's latest sample
    memory_last: float


@dataclass(frozen=True)
class MetricHistory:
    """CPU % and memory % between two wall times, oldest first, one point per bucket that has samples."""

    start_wall: float
    end_wall: float
    points: tuple[MetricPoint, ...]
    bucket_seconds: float  # how much time one point covers
    samples: int  # ledger rows the points sum up
    earlier_runs: bool  # False: the ledger is off or could not be read, so there are no points; `note` says why
    note: str = ""  # why there are no points, or why this run's samples are missing; safe to show


def bucket_width(span: float, max_points: int) -> int:
    """The smallest round width in seconds whose aligned buckets cut `span` into at most `max_points`."""
    # A range cuts at most ceil(span / width) + 1 aligned buckets (partial ones at both ends).
    least = span / (max_points - 1)
    for width in ROUND_WIDTHS:
        if width >= least:
            return width
    return math.ceil(least / DAY) * DAY


def check_range(start_wall: float, end_wall: float, max_points: int) -> None:
    """Refuse a range that is empty or reversed, or a point count outside 2..MAX_POINTS, saying what is allowed."""
    if not end_wall > start_wall:
        raise HistoryRefused(f"asked for metrics from {start_wall:.0f} to {end_wall:.0f}: the end must come "
                                   f"after the start")
    if not 2 <= max_points <= MAX_POINTS:
        raise HistoryRefused(f"asked for {max_points} points: ask for 2 to {MAX_POINTS}")


async def metrics_over(ledger: Ledger, start_wall: float, end_wall: float, max_points: int,
                       retention_days: float | None = None, now: float | None = None) -> MetricHistory:
    """CPU and memory with start <= at_wall < end in at most `max_points` buckets, as far as `ledger` can tell.

    A range reaching further back than `retention_days` before `now` gets a note saying older samples are pruned.
    """
    check_range(start_wall, end_wall, max_points)
    width = bucket_width(end_wall - start_wall, max_points)
    if ledger.mode == OFF:
        return MetricHistory(start_wall, end_wall, (), width, 0, earlier_runs=False,
                             note=f"the ledger is off: {ledger.snapshot().detail}")
    try:
        rows = await metric_buckets(ledger, start_wall, end_wall, width)
    except LedgerError as exc:
        return MetricHistory(start_wall, end_wall, (), width, 0, earlier_runs=False, note=str(exc))
    points = tuple(MetricPoint(b.at_wall, b.cpu_high, b.memory_high, b.cpu_low, b.memory_low, b.cpu_last,
                               b.memory_last) for b in rows
                   if b.cpu_high is not None and b.memory_high is not None and b.cpu_low is not None
                   and b.memory_low is not None and b.cpu_last is not None and b.memory_last is not None)
    notes = []
    if not ledger.recording:
        notes.append(f"this run's samples are not recorded: {ledger.snapshot().detail}")
    if retention_days is not None and now is not None and start_wall < now - retention_days * DAY:
        notes.append(f"the ledger keeps {retention_days:g} days of metrics (metrics_retention_days); older ones "
                     f"are pruned")
    return MetricHistory(start_wall, end_wall, points, width, sum(b.samples for b in rows), earlier_runs=True,
                         note="; ".join(notes))
