"""The one ring of recent waits and the one percentile every pool, queue and the scheduler report."""

from __future__ import annotations

from medops.core.waits import RecentWaits, percentile


def test_the_median_of_an_even_count_is_a_sample_not_a_mean() -> None:
    waits = RecentWaits(keep=10)
    for seconds in (0.0, 1.0, 2.0, 10.0):
        waits.add(seconds)
    # nearest rank: p50 is the sample at round(0.5 * 3) = 2, p95 the one at round(0.95 * 3) = 3
    assert waits.percentiles() == (2.0, 10.0)


def test_only_the_latest_waits_are_kept() -> None:
    waits = RecentWaits(keep=3)
    for seconds in (50.0, 50.0, 1.0, 2.0, 3.0):
        waits.add(seconds)
    assert waits.percentiles() == (2.0, 3.0)


def test_requests_still_waiting_count_with_their_age() -> None:
    waits = RecentWaits(keep=10)
    waits.add(1.0)
    assert waits.percentiles(waiting=[9.0, 9.0]) == (9.0, 9.0)


def test_no_waits_report_zero_and_a_negative_wait_counts_as_none() -> None:
    waits = RecentWaits(keep=10)
    assert waits.percentiles() == (0.0, 0.0)
    waits.add(-0.5)
    assert waits.percentiles() == (0.0, 0.0)
    assert percentile([], 99) == 0.0
