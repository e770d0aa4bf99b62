"""The History tab over a real core and real ledger files: requests and alerts newest first, paging back, the
ledger off, no prompt text on screen; frozen screenshots at 80x24 and 160x48."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import DataTable, Label, Static

from medops.console.app import MedopsApp
from medops.console.forms.prompt_box import PromptBox
from medops.console.panes.history import HistoryPane
from medops.core.clock import FakeClock
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.ledger.history import AlertHistory, Before, RequestHistory
from medops.core.ledger.records import RequestRecord
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import Alert
from tests.helpers.console_data import NOW, FrozenCore, busy_snapshot
from tests.helpers.ledger_holder import held
from tests.helpers.request_records import record, recorded
from tests.helpers.waiting import until

SECRET = "MRN 90210-SECRET"
OTHER_MODEL = "qwen/qwen3-32b"


def live_app(locations: Locations) -> tuple[MedopsApp, ResourceCore]:
    settings = Settings(refresh_interval=0.5, cpu_threads=2, io_threads=4)
    core = ResourceCore(settings, locations)
    return MedopsApp(settings, locations, core=core), core


def rows(app: MedopsApp, table: str) -> list[list[str]]:
    """Every row of one of the tab's tables as text, scrolled into view or not."""
    data = app.query_one(f"#history-{table}", DataTable)
    return [[str(cell) for cell in data.get_row_at(n)] for n in range(data.row_count)]


def heading(app: MedopsApp, name: str = "#history-title") -> str:
    return str(app.query_one(name, Label).render())


def completed(app: MedopsApp, count: int) -> Callable[[], bool]:
    return lambda: app.latest is not None and app.latest.scheduler.completed >= count


def more_fetched(pane: HistoryPane, than: int) -> Callable[[], bool]:
    return lambda: pane.fetches > than


async def show_history(pilot: Pilot[Any], app: MedopsApp) -> HistoryPane:
    assert await until(pilot, lambda: app.core_started and app.snapshots_applied > 0)
    pane = app.query_one(HistoryPane)
    before = pane.fetches
    await pilot.press("6")
    assert await until(pilot, lambda: pane.fetches >= before + 2)  # both tables answered
    return pane


@pytest.mark.usefixtures("knowledge_ready")
async def test_prompts_sent_from_the_console_are_listed_newest_first_without_their_text(
        locations: Locations) -> None:
    app, _ = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        for n in (1, 2):
            app.query_one("#prompt-text", PromptBox).text = f"Summarise for {SECRET}: chest pain, visit {n}."
            await pilot.press("enter")
            assert await until(pilot, completed(app, n))
        await pilot.press("escape")
        await show_history(pilot, app)
        listed = rows(app, "requests")
        assert [(row[6], row[1], row[5], row[-1].rsplit("-", 1)[0]) for row in listed] == [
            ("triage", "ok 200", "1", "console-2"), ("triage", "ok 200", "1", "console-1")]
        screen = app.export_screenshot().replace("&#160;", " ")  # the SVG keeps spaces as nbsp
        assert "console-1" not in screen  # the id column is scrolled off at 80 columns...
        assert "ok 200" in screen  # ...but the rows are on screen
        everything = screen + repr(listed) + repr(rows(app, "alerts")) + heading(app)
        assert SECRET not in everything and "chest pain" not in everything


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_request_finishing_while_the_tab_is_shown_appears_without_a_key(locations: Locations) -> None:
    app, core = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await show_history(pilot, app)
        assert rows(app, "requests") == [] and "all 0 shown" in heading(app)
        await core.ask(PromptRequest("A question", "medication", Priority.HIGH, max_completion_tokens=30,
                                     request_id="while-shown"))
        assert await until(pilot, lambda: len(rows(app, "requests")) == 1)
        assert rows(app, "requests")[0][-1] == "while-shown" and pane.pages["requests"] == 1


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_hidden_tab_reads_nothing_until_it_is_shown(locations: Locations) -> None:
    app, core = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await core.ask(PromptRequest("A question", "triage", max_completion_tokens=30))
        applied = app.snapshots_applied
        assert await until(pilot, lambda: app.snapshots_applied >= applied + 2)  # the finished request was seen
        assert app.query_one(HistoryPane).fetches == 0
        await show_history(pilot, app)
        assert len(rows(app, "requests")) == 1


@pytest.mark.usefixtures("knowledge_ready")
async def test_o_pages_back_and_m_shows_one_model_only(locations: Locations, clock: FakeClock) -> None:
    earlier = [record(clock.wall() - 3_600 + n, model=OTHER_MODEL if n % 10 == 0 else "llama-3.1-8b-instant",
                      request_id=f"old-{n}") for n in range(150)]
    await recorded(locations, clock, earlier)
    app, _ = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await show_history(pilot, app)
        assert [row[-1] for row in rows(app, "requests")] == [f"old-{n}" for n in range(149, 49, -1)]
        assert "100 shown," in heading(app) and "all 100" not in heading(app)
        await pilot.press("o")
        assert await until(pilot, lambda: len(rows(app, "requests")) == 150)
        assert [row[-1] for row in rows(app, "requests")] == [f"old-{n}" for n in range(149, -1, -1)]
        assert "all 150 shown," in heading(app)
        while pane.model != OTHER_MODEL:
            fetched = pane.fetches
            await pilot.press("m")
            assert await until(pilot, more_fetched(pane, fetched))
        assert {row[-2] for row in rows(app, "requests")} == {OTHER_MODEL} and len(rows(app, "requests")) == 15
        assert OTHER_MODEL in heading(app)


@pytest.mark.usefixtures("knowledge_ready")
async def test_with_the_ledger_held_by_another_medops_the_tab_says_this_run_only_and_why(
        locations: Locations, clock: FakeClock) -> None:
    await recorded(locations, clock, [record(clock.wall() - 60, request_id="earlier-run")])
    with held(locations.ops_db, "rw") as holder:
        app, _ = live_app(locations)
        async with app.run_test(size=(80, 24)) as pilot:
            await show_history(pilot, app)
            assert "this run only" in heading(app) and "this run only" in heading(app, "#history-alerts-title")
            note = app.query_one("#history-note", Static)
            assert note.display and f"process {holder.pid}" in str(note.render())
            assert "earlier runs' requests cannot be shown: the ledger is off" in str(note.render())
            assert rows(app, "requests") == []
            assert note.region.right <= 80 and app.query_one(HistoryPane).region.bottom <= 23


class FrozenHistoryCore(FrozenCore):
    """The frozen core an hour after midnight, with a fixed page of requests and alerts across three days."""

    def __init__(self) -> None:
        super().__init__(dataclasses.replace(busy_snapshot(), taken_at=NOW + 3_600))

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        outcomes = [("ok", 200, 1), ("rate_limited", 429, 2), ("ok", 200, 1), ("failed", 503, 3),
                    ("timeout", None, 1), ("ok", 200, 1)]
        requests = tuple(
            RequestRecord(NOW + 3_560 - n * 1_800, ("triage", "medication", "documentation")[n % 3],
                          ("critical", "high", "normal")[n % 3],
                          ("llama-3.1-8b-instant", "llama-3.3-70b-versatile")[n % 2], 400 + 37 * n, 60 + 11 * n,
                          0.35 + 0.1 * n, 0.02 * n, outcome, status, attempts, f"console-{60 - n}")
            for n, (outcome, status, attempts) in enumerate(outcomes * 4))
        return RequestHistory(requests[:limit], Before(requests[-1].at_wall, 1), earlier_runs=True)

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        opened = NOW - 86_400 - 600
        alerts = (Alert("quota_low:llama-3.3-70b-versatile", "critical", "tpd at 97% of 100k", NOW - 60, 97.0,
                        rule="quota_low", updated_at=NOW - 60),
                  Alert("loop_lag", "warning", "event-loop lag 140 ms over 100 ms", NOW - 600, 140.0, NOW - 500,
                        rule="loop_lag", updated_at=NOW - 500),
                  Alert("loop_lag", "warning", "event-loop lag 140 ms over 100 ms", NOW - 600, 140.0,
                        rule="loop_lag", updated_at=NOW - 600),
                  Alert("pool_saturated:io", "critical", "io pool 8 of 8 busy, 5 queued", opened, 5.0,
                        rule="pool_saturated", repeats=1, updated_at=opened + 300))
        return AlertHistory(alerts[:limit], None, earlier_runs=True)


async def open_history(pilot: Pilot[Any]) -> None:
    """Show the History tab once the first snapshot is in and both tables have their page."""
    app = pilot.app
    assert isinstance(app, MedopsApp)
    await until(pilot, lambda: app.snapshots_applied > 0, within=2.0)
    await pilot.press("6")
    pane = app.query_one(HistoryPane)
    assert await until(pilot, lambda: pane.fetches >= 2, within=2.0)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_history_tab(snap_compare: Callable[..., bool], locations: Locations, utc_time: None,
                         size: tuple[int, int]) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenHistoryCore())
    assert snap_compare(app, terminal_size=size, run_before=open_history)


class SlowHistoryCore(FrozenCore):
    """A frozen core whose history reads wait for the test, counting how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.running_now = self.most_at_once = self.reads = 0

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        return await self._read(RequestHistory((), None, earlier_runs=True))

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        return await self._read(AlertHistory((), None, earlier_runs=True))

    async def _read(self, page: Any) -> Any:
        self.reads += 1
        self.running_now += 1
        self.most_at_once = max(self.most_at_once, self.running_now)
        try:
            await self.release.wait()
            return page
        finally:
            self.running_now -= 1


async def test_snapshots_during_a_slow_read_never_start_more_reads(locations: Locations) -> None:
    core = SlowHistoryCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("6")
        assert await until(pilot, lambda: core.reads == 2)  # one read per table, held by the core
        busy = busy_snapshot()
        for n in range(1, 6):  # new requests finish while the reads are slow
            scheduler = dataclasses.replace(busy.scheduler, completed=busy.scheduler.completed + n)
            app.apply_snapshot(dataclasses.replace(busy, scheduler=scheduler))
            await pilot.pause()
        assert core.reads == 2 and core.most_at_once == 2
        core.release.set()
        app.apply_snapshot(dataclasses.replace(busy, scheduler=dataclasses.replace(
            busy.scheduler, completed=busy.scheduler.completed + 9)))
        assert await until(pilot, lambda: core.reads == 4)  # the activity seen meanwhile is read once, after


class ReopenedAlertCore(FrozenCore):
    """A frozen core whose alert history holds one alert that opened, cleared, opened again and repeated."""

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        opened = NOW - 600
        cpu = Alert("cpu", "warning", "CPU 95% over 90%", opened, 95.0, rule="cpu", updated_at=opened)
        announcements = (dataclasses.replace(cpu, repeats=2, updated_at=NOW - 60),
                         dataclasses.replace(cpu, repeats=1, updated_at=NOW - 300),  # back soon: the same alert
                         dataclasses.replace(cpu, cleared_at=NOW - 400, updated_at=NOW - 400),
                         cpu)
        return AlertHistory(announcements, None, earlier_runs=True)


async def test_an_alert_that_opens_again_after_clearing_has_a_reopened_row(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=ReopenedAlertCore())
    async with app.run_test(size=(160, 48)) as pilot:
        await open_history(pilot)
        # the repeat after the reopening is the same open alert: no row of its own
        assert [row[1] for row in rows(app, "alerts")] == ["reopened", "cleared (3m20s)", "opened"]


class RepeatedAlertCore(FrozenCore):
    """A frozen core whose alert history holds one alert announced at each update while open, then escalated,
    repeated, and cleared (announced twice)."""

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        opened = NOW - 600
        cpu = Alert("cpu", "warning", "CPU 95% over 90%", opened, 95.0, rule="cpu", updated_at=opened)
        critical = dataclasses.replace(cpu, level="critical", message="CPU 99% over 90%", value=99.0)
        announcements = (dataclasses.replace(critical, cleared_at=NOW - 60, updated_at=NOW - 50),
                         dataclasses.replace(critical, cleared_at=NOW - 60, updated_at=NOW - 60),
                         dataclasses.replace(critical, repeats=4, updated_at=NOW - 120),
                         dataclasses.replace(critical, repeats=3, updated_at=NOW - 200),
                         dataclasses.replace(cpu, repeats=2, message="CPU 97% over 90%", updated_at=NOW - 300),
                         dataclasses.replace(cpu, repeats=1, message="CPU 96% over 90%", updated_at=NOW - 400),
                         cpu)
        return AlertHistory(announcements, None, earlier_runs=True)


async def test_an_open_alert_announced_at_each_update_is_listed_once_with_rows_only_for_changes(
        locations: Locations) -> None:
    """History listed the same open alert again at each update: "still open", "still open", …"""
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=RepeatedAlertCore())
    async with app.run_test(size=(160, 48)) as pilot:
        await open_history(pilot)
        assert [row[1] for row in rows(app, "alerts")] == ["cleared (9m00s)", "now critical", "opened"]


def test_the_fleets_alert_rows_are_one_per_member_and_change() -> None:
    from medops.console.panes.history import alert_entries
    from medops.core.fleet.history import FleetAlert

    cpu = Alert("cpu", "warning", "CPU 95% over 90%", NOW - 600, 95.0, rule="cpu", updated_at=NOW - 600)
    stream = [FleetAlert(f"{n}-0", member, dataclasses.replace(cpu, repeats=n, updated_at=NOW - 600 + 60 * n))
              for n, member in ((3, "b"), (3, "a"), (2, "b"), (2, "a"), (1, "b"), (1, "a"))]
    stream += [FleetAlert("0-1", "b", cpu), FleetAlert("0-0", "a", cpu)]
    assert [(row.instance, event) for row, event in alert_entries(stream)] == [("b", "opened"), ("a", "opened")]
    # a page that starts after the opening: the oldest row says the alert was open, the repeats no more
    assert [(row.instance, event) for row, event in alert_entries(stream[:4])] == [
        ("b", "still open"), ("a", "still open")]


class WideFiguresCore(FrozenCore):
    """A frozen core whose requests have the widest labels beside the figures: a long agent, a long outcome."""

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        requests = tuple(RequestRecord(NOW - 86_400 - 60 * n, "documentation", "normal", "llama-3.1-8b-instant",
                                       12_000, 900, 0.101, 2.5, "rate_limited", 429, 3, f"console-{n}")
                         for n in range(5))
        return RequestHistory(requests, None, earlier_runs=True)


async def test_at_80_columns_no_figure_of_a_request_is_cut_at_the_edge(locations: Locations) -> None:
    # Seen in a trial: "101ms" drawn as "101m" at 80 columns, the latency column straddling the edge.
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=WideFiguresCore())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot)
        table = app.query_one("#history-requests", DataTable)
        drawn = [strip.text for strip in table.render_lines(Region(0, 0, *table.size))]
        assert all(label in drawn[0] for label in ("latency", "wait", "tokens", "try"))
        body = drawn[1:1 + table.row_count]
        assert len(body) == 5
        assert all("101ms" in line and "2500ms" in line and "12000+900" in line for line in body), body
