"""The Graphs tab's long spans: w reaches 6h, 24h and 7d, read from a real core's seeded ledger file by a worker,
at most every 30 s of core time and never while hidden; the ledger off said as such; screenshots at 80x24, 160x48."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static
from textual_plotext import PlotextPlot

from medops.console.app import MedopsApp
from medops.console.panes.graphs import REFETCH_EVERY, WINDOWS, GraphsPane, peaks, whole_ticks
from medops.core.clock import FakeClock
from medops.core.ledger.metric_history import MetricHistory, MetricPoint
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import NOW, FrozenCore
from tests.helpers.ledger_holder import held
from tests.helpers.metric_samples import seeded, two_hours_with_one_spike
from tests.helpers.screenshots import SIZES, settle
from tests.helpers.waiting import until


def seeded_app(locations: Locations, clock: FakeClock) -> tuple[MedopsApp, ResourceCore]:
    """A console over a real core whose clock stands still unless the test moves it."""
    settings = Settings(refresh_interval=0.25, cpu_threads=2, io_threads=4, max_cases_in_memory=4, case_memory_mb=1,
                        process_pool_size=1)
    core = ResourceCore(settings, locations, clock)
    return MedopsApp(settings, locations, core=core), core


def summary(app: MedopsApp) -> str:
    return str(app.query_one("#graphs-summary", Static).render())


async def graphs_at(pilot: Pilot[Any], app: MedopsApp, span: str) -> GraphsPane:
    """Show the Graphs tab and press w until the title names `span`."""
    assert await until(pilot, lambda: app.core_started and app.snapshots_applied > 0)
    await pilot.press("2")
    pane = app.query_one(GraphsPane)
    for _ in WINDOWS:
        if f"last {span} " in str(pane.border_title):
            return pane
        await pilot.press("w")
    raise AssertionError(f"w never reached {span}: {pane.border_title}")


@pytest.mark.usefixtures("knowledge_ready")
async def test_w_reaches_6h_and_the_graphs_show_the_ledgers_points(locations: Locations, clock: FakeClock) -> None:
    await seeded(locations, clock, two_hours_with_one_spike(clock.wall()))
    app, _ = seeded_app(locations, clock)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await graphs_at(pilot, app, "6h")
        assert pane.border_title == "CPU & memory, last 6h from the ledger (w: span)"
        assert await until(pilot, lambda: pane.fetches == 1)
        assert "ledger: 120 points, each the highest of 1m · 7.2k samples · read every 30s" in summary(app)
        await pilot.pause()
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "hours ago" in screen and "-6" in screen


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_ledger_span_is_read_again_only_after_30_s_and_not_redrawn_between(
        locations: Locations, clock: FakeClock) -> None:
    await seeded(locations, clock, two_hours_with_one_spike(clock.wall()))
    app, _ = seeded_app(locations, clock)
    async with app.run_test(size=(160, 48)) as pilot:  # tall enough to plot (at 80x24 the figures show)
        pane = await graphs_at(pilot, app, "6h")
        assert await until(pilot, lambda: pane.fetches == 1)
        drawn, applied = pane.redraws, app.snapshots_applied
        await clock.advance(REFETCH_EVERY - 5)
        assert await until(pilot, lambda: app.snapshots_applied >= applied + 3)
        assert pane.fetches == 1 and pane.redraws == drawn
        await clock.advance(5)
        assert await until(pilot, lambda: pane.fetches == 2)
        assert pane.redraws == drawn + 1  # the new answer holds this run's samples too


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_hidden_graphs_tab_reads_nothing_until_shown(locations: Locations, clock: FakeClock) -> None:
    app, _ = seeded_app(locations, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started and app.snapshots_applied > 0)
        pane = app.query_one(GraphsPane)
        await pilot.press("w", "w", "w")  # 6h, from the Overview tab
        applied = app.snapshots_applied
        assert await until(pilot, lambda: app.snapshots_applied >= applied + 3)
        assert "last 6h" in str(pane.border_title) and pane.fetches == 0
        await pilot.press("2")
        assert await until(pilot, lambda: pane.fetches == 1)
        assert "ledger: no samples in the last 6h" in summary(app)


@pytest.mark.usefixtures("knowledge_ready")
async def test_with_the_ledger_off_6h_says_so_and_why(locations: Locations, clock: FakeClock) -> None:
    await seeded(locations, clock, two_hours_with_one_spike(clock.wall()))
    with held(locations.ops_db, "rw") as holder:
        app, _ = seeded_app(locations, clock)
        async with app.run_test(size=(160, 48)) as pilot:
            pane = await graphs_at(pilot, app, "6h")
            assert await until(pilot, lambda: pane.fetches == 1)
            await pilot.pause()
            wide = " ".join(summary(app).split())
            screen = app.export_screenshot().replace("&#160;", " ")
            await pilot.resize_terminal(80, 24)
            assert await until(pilot, lambda: "Stop the other one" not in summary(app))
            narrow = " ".join(summary(app).split())
    said = f"No 6h graph: the ledger is off: ops.duckdb is locked by process {holder.pid}"
    assert said in wide and "Stop the other one, or give this one its own MEDOPS_DATA_DIR" in wide
    assert "this run&#x27;s last 1h, from memory" in screen  # the plots' titles say what they show instead
    assert said in narrow  # at 80 columns, what happened only, so the plots keep their rows


def test_hours_and_days_get_whole_ticks_back_from_now() -> None:
    assert whole_ticks(6) == [-6, -5, -4, -3, -2, -1, 0]
    assert whole_ticks(24) == [-24, -18, -12, -6, 0]
    assert whole_ticks(7) == [-7, -6, -5, -4, -3, -2, -1, 0]


def ledger_point(at: float, cpu: float, memory: float) -> MetricPoint:
    """A bucket whose samples all read `cpu` and `memory`."""
    return MetricPoint(at, cpu, memory, cpu, memory, cpu, memory)


class FrozenLedgerCore(FrozenCore):
    """The frozen core with a fixed 6h answer: a quiet hour, a busy one with a spike, and a gap between."""

    async def metric_history(self, span: float, max_points: int = 400,
                             end_wall: float | None = None) -> MetricHistory:
        end = NOW if end_wall is None else end_wall
        minutes = [m for m in range(360) if not 150 <= m < 200]  # medops was not running for 50 minutes
        points = tuple(ledger_point(end - span + 60 * m + 30,
                                    95.0 if m == 300 else 20 + 30 * math.sin(m / 20) ** 2, 45 + m / 36)
                       for m in minutes)
        return MetricHistory(end - span, end, points, 60, 60 * len(points), earlier_runs=True)


async def show_6h(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    await pilot.press("2", "w", "w", "w")
    pane = pilot.app.query_one(GraphsPane)
    for _ in range(100):
        if pane.fetches:
            break
        await pilot.pause(0.02)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_6h_graph(snap_compare: Callable[..., bool], locations: Locations, size: tuple[int, int]) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenLedgerCore())
    assert snap_compare(app, terminal_size=size, run_before=show_6h)


def test_a_long_ring_is_drawn_as_peaks_per_slice_keeping_spikes() -> None:
    now = 1_800_000_000.5
    points = [(now - 3_600 + x, 10.0) for x in range(3_601)]  # an hour and its last second, at 10%
    points[1_234] = (points[1_234][0], 97.0)  # one second of 97%
    drawn = peaks(points, 3_600.0, 400)
    assert len(drawn) <= 400
    assert (points[1_234][0], 97.0) in drawn
    assert [at for at, _ in drawn] == sorted(at for at, _ in drawn)
    later = peaks([*points[1:], (now + 1, 10.0)], 3_600.0, 400)  # a second on: the spike keeps its place
    assert (points[1_234][0], 97.0) in later
    assert peaks(points[:300], 3_600.0, 400) == points[:300]  # few enough: drawn as they are


@pytest.mark.parametrize(("size", "plotted"), [((80, 24), False), ((160, 48), True)], ids=["80x24", "160x48"])
async def test_a_graph_too_small_to_read_shows_the_figures_instead(locations: Locations, size: tuple[int, int],
                                                                   plotted: bool) -> None:
    """At 80x24 a plot gets three rows: 52% drawn on a row labelled 66.7 misleads, so the numbers show."""
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=size) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.press("2")
        pane = app.query_one(GraphsPane)
        assert await until(pilot, lambda: pane._plots is not None)
        await pilot.pause(0.3)
        summary = str(app.query_one("#graphs-summary", Static).render())
        assert all(plot.display == plotted for plot in app.query(PlotextPlot))
        assert ("memory latest 52%" in summary and "max 52%" in summary) != plotted, summary


class BusyWeekCore(FrozenCore):
    """A 7d answer whose every bucket peaked at 100% while the CPU now reads 5% (and once dropped to 2%)."""

    async def metric_history(self, span: float, max_points: int = 400,
                             end_wall: float | None = None) -> MetricHistory:
        end = NOW if end_wall is None else end_wall
        width = span / 300
        points = tuple(MetricPoint(end - span + width * (n + 0.5), 100.0, 60.0, 2.0 if n == 100 else 30.0, 40.0,
                                   5.0 if n == 299 else 80.0, 50.0) for n in range(300))
        return MetricHistory(end - span, end, points, width, 3_000, earlier_runs=True)


async def test_the_7d_figures_say_the_latest_sample_and_the_lowest_not_the_bucket_highs(
        locations: Locations) -> None:
    """Before: "CPU latest 100% · min 100% · max 100%" while the CPU read 5%; and no time axis."""
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=BusyWeekCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.press("2", *["w"] * (WINDOWS.index(7 * 86_400.0) - 1))
        pane = app.query_one(GraphsPane)
        assert await until(pilot, lambda: pane.fetches > 0 and "CPU latest" in summary(app))
        shown = summary(app)
        assert "CPU latest 5% · min 2% · max 100%" in shown, shown
        assert "7d ago ───" in shown and "─ 17m ago" in shown, shown  # the trend's time axis: the last bucket's age
