"""CPU and memory history from real ledger files: bucketed in SQL to a bound, peaks kept, the ledger off or shared."""

from __future__ import annotations

import math

import pytest

from medops.core.clock import FakeClock
from medops.core.ledger.across_runs import HistoryRefused
from medops.core.ledger.metric_history import MAX_POINTS, bucket_width, metrics_over
from medops.core.ledger.writer import OFF, READ_ONLY, Ledger
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.ledger_holder import held
from tests.helpers.metric_samples import HOUR, seeded, two_hours_with_one_spike


async def open_ledger(locations: Locations, clock: FakeClock) -> Ledger:
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    return ledger


@pytest.mark.parametrize("max_points", [2, 7, 50, 400])
async def test_two_hours_of_samples_come_back_in_at_most_max_points_with_every_peak(
        locations: Locations, clock: FakeClock, max_points: int) -> None:
    end = clock.wall()
    await seeded(locations, clock, two_hours_with_one_spike(end))
    ledger = await open_ledger(locations, clock)
    try:
        history = await metrics_over(ledger, end - 2 * HOUR, end, max_points)
    finally:
        await ledger.stop()
    assert 0 < len(history.points) <= max_points
    assert history.samples == 7_200 and history.earlier_runs and history.note == ""
    assert max(p.cpu_percent for p in history.points) == 97.0
    assert max(p.memory_percent for p in history.points) == 88.0
    assert sorted(p.cpu_percent for p in history.points)[:-1] == [10.0] * (len(history.points) - 1)
    times = [p.at_wall for p in history.points]
    assert times == sorted(times) and end - 2 * HOUR <= times[0] and times[-1] < end


async def test_each_point_is_one_round_bucket_holding_its_peak(locations: Locations, clock: FakeClock) -> None:
    end = clock.wall()  # a multiple of 300 s, so 2 h makes 24 whole buckets
    spike_at = end - 2 * HOUR + 1_234
    await seeded(locations, clock, two_hours_with_one_spike(end))
    ledger = await open_ledger(locations, clock)
    try:
        history = await metrics_over(ledger, end - 2 * HOUR, end, 50)
    finally:
        await ledger.stop()
    assert history.bucket_seconds == 300  # the round width at or above 2 h / 49
    assert len(history.points) == 24
    spiked = [p for p in history.points if p.cpu_percent == 97.0]
    assert len(spiked) == 1 and math.floor(spiked[0].at_wall / 300) == math.floor(spike_at / 300)
    assert all(p.at_wall % 300 == 149.5 for p in history.points)  # the mean time of 300 samples a second apart


async def test_a_range_read_again_later_keeps_its_buckets_where_they_were(locations: Locations,
                                                                         clock: FakeClock) -> None:
    end = clock.wall()
    await seeded(locations, clock, [(end - 2 * HOUR + n, float(n % 97), 40.0) for n in range(7_200)])
    ledger = await open_ledger(locations, clock)
    try:
        first = await metrics_over(ledger, end - HOUR - 30, end - 30, 100)
        later = await metrics_over(ledger, end - HOUR, end, 100)
    finally:
        await ledger.stop()
    assert first.bucket_seconds == later.bucket_seconds == 60
    # every bucket wholly inside both ranges has the same point in both reads
    shared = set(first.points[1:-1]) & set(later.points[1:-1])
    assert len(shared) == len(first.points) - 3 > 50


async def test_fewer_samples_than_points_come_back_one_point_each(locations: Locations, clock: FakeClock) -> None:
    end = clock.wall()
    samples = [(end - 120 + n * 5, float(n), 50.0 + n) for n in range(24)]
    await seeded(locations, clock, samples)
    ledger = await open_ledger(locations, clock)
    try:
        history = await metrics_over(ledger, end - 120, end, 400)
    finally:
        await ledger.stop()
    assert history.bucket_seconds == 1
    assert [(p.at_wall, p.cpu_percent, p.memory_percent) for p in history.points] == samples


async def test_a_range_with_no_samples_is_empty_and_says_nothing_is_wrong(locations: Locations,
                                                                         clock: FakeClock) -> None:
    end = clock.wall()
    await seeded(locations, clock, [(end - 10 * HOUR + n, 50.0, 50.0) for n in range(60)])
    ledger = await open_ledger(locations, clock)
    try:
        history = await metrics_over(ledger, end - 6 * HOUR, end, 400)
    finally:
        await ledger.stop()
    assert history.points == () and history.samples == 0
    assert history.earlier_runs and history.note == ""


async def test_with_the_ledger_off_the_history_says_why_instead_of_being_empty(locations: Locations,
                                                                              clock: FakeClock) -> None:
    end = clock.wall()
    await seeded(locations, clock, two_hours_with_one_spike(end))
    with held(locations.ops_db, "rw") as holder:
        ledger = await open_ledger(locations, clock)
        try:
            assert ledger.mode == OFF
            history = await metrics_over(ledger, end - 2 * HOUR, end, 400)
        finally:
            await ledger.stop()
    assert not history.earlier_runs and history.points == ()
    assert history.note.startswith("the ledger is off: ops.duckdb is locked by process ")
    assert str(holder.pid) in history.note


async def test_a_ledger_another_process_holds_read_only_is_read_and_says_this_run_is_not_recorded(
        locations: Locations, clock: FakeClock) -> None:
    end = clock.wall()
    await seeded(locations, clock, two_hours_with_one_spike(end))
    with held(locations.ops_db, "ro"):
        ledger = await open_ledger(locations, clock)
        try:
            assert ledger.mode == READ_ONLY
            history = await metrics_over(ledger, end - 2 * HOUR, end, 400)
        finally:
            await ledger.stop()
    assert history.earlier_runs and history.samples == 7_200
    assert history.note.startswith("this run's samples are not recorded: ops.duckdb is opened read-only by process")


@pytest.mark.parametrize(("start", "end", "max_points", "says"), [
    (100.0, 100.0, 400, "the end must come after the start"),
    (200.0, 100.0, 400, "the end must come after the start"),
    (0.0, 100.0, 1, "ask for 2 to 5000"),
    (0.0, 100.0, MAX_POINTS + 1, "ask for 2 to 5000"),
])
async def test_an_empty_range_or_a_point_count_out_of_bounds_is_refused(
        locations: Locations, clock: FakeClock, start: float, end: float, max_points: int, says: str) -> None:
    ledger = await open_ledger(locations, clock)
    try:
        with pytest.raises(HistoryRefused, match=says):
            await metrics_over(ledger, start, end, max_points)
    finally:
        await ledger.stop()


@pytest.mark.parametrize("max_points", [2, 3, 7, 100, 400, MAX_POINTS])
@pytest.mark.parametrize("span", [1.0, 59.0, HOUR, 6 * HOUR, 86_400.0, 7 * 86_400.0, 400 * 86_400.0])
def test_the_bucket_width_never_lets_a_range_cut_more_buckets_than_asked(span: float, max_points: int) -> None:
    width = bucket_width(span, max_points)
    for start in (0.0, 0.5, width - 0.25, 12_345.678, 1_767_225_599.9):
        end = start + span
        cut = math.ceil(end / width) - math.floor(start / width)  # buckets floor(t / width) for start <= t < end
        assert cut <= max_points, (start, width)


@pytest.mark.usefixtures("knowledge_ready")
async def test_the_core_reads_the_span_up_to_now_by_its_clock_and_says_what_retention_pruned(
        locations: Locations, clock: FakeClock) -> None:
    end = clock.wall()
    await seeded(locations, clock, two_hours_with_one_spike(end))
    core = ResourceCore(Settings(max_cases_in_memory=4, case_memory_mb=1, cpu_threads=2, io_threads=4,
                                 process_pool_size=1, metrics_retention_days=0.25), locations, clock)
    await core.start()
    try:
        history = await core.metric_history(7 * HOUR)
    finally:
        await core.stop()
    assert history.end_wall == end and history.start_wall == end - 7 * HOUR
    assert history.samples == 7_200 and max(p.cpu_percent for p in history.points) == 97.0
    assert len(history.points) <= 400 and history.bucket_seconds == 120
    assert history.note == ("the ledger keeps 0.25 days of metrics (metrics_retention_days); older ones are pruned")


async def test_each_point_also_holds_its_lowest_and_its_latest_sample(locations: Locations,
                                                                      clock: FakeClock) -> None:
    """A 7d read of a busy week then a calm minute: the highs say 100%, the last sample says 5%."""
    end = clock.wall()
    samples = [(end - 2 * HOUR + n, 100.0 if n < 7_140 else 5.0, 40.0) for n in range(7_200)]
    await seeded(locations, clock, samples)
    ledger = await open_ledger(locations, clock)
    try:
        history = await metrics_over(ledger, end - 2 * HOUR, end, 7)
    finally:
        await ledger.stop()
    assert max(p.cpu_percent for p in history.points) == 100.0
    assert history.points[-1].cpu_last == 5.0 and history.points[-1].cpu_percent == 100.0
    assert min(p.cpu_lowest for p in history.points) == 5.0
