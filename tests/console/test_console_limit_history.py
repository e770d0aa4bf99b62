"""The Limits form's history view over a real core and real ledger files: earlier runs, refresh, scrolling."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Input, Label, Static

from medops.console.app import MedopsApp
from medops.console.forms.limit_history import LimitHistoryView, history_table, transition
from medops.console.forms.limits import LimitsScreen
from medops.core.clock import FakeClock
from medops.core.ledger.limit_history import LimitChangeHistory
from medops.core.ledger.writer import Ledger
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import LimitChange
from tests.helpers.console_data import NOW, FrozenCore
from tests.helpers.core_runs import one_run
from tests.helpers.ledger_holder import held
from tests.helpers.waiting import until


def live_app(locations: Locations) -> MedopsApp:
    settings = Settings(refresh_interval=0.5, cpu_threads=2, io_threads=4)
    return MedopsApp(settings, locations, core=ResourceCore(settings, locations))


async def recorded(locations: Locations, clock: FakeClock, changes: list[tuple[str, str, str]]) -> None:
    """An earlier run's changes, a minute apart, written straight to the ledger (quicker than a core run)."""
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    for key, old, new in changes:
        ledger.record_limit_change(LimitChange(clock.wall(), key, old, new, "console"))
        await clock.advance(60)
    await ledger.stop()


def history_view(app: MedopsApp) -> LimitHistoryView:
    assert isinstance(app.screen, LimitsScreen)
    return app.screen.query_one(LimitHistoryView)


def shown_lines(view: LimitHistoryView) -> list[str]:
    """The history as the view renders it, at the width its list has on screen."""
    assert view.shown is not None
    width = view.query_one("#limit-history-lines", Static).content_region.width
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(history_table(view.shown.changes))
    return console.export_text().splitlines()


@pytest.mark.usefixtures("knowledge_ready")
async def test_the_history_lists_earlier_runs_and_refreshes_when_a_limit_is_changed(
        locations: Locations, clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    app = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("l")
        view = history_view(app)
        assert await until(pilot, lambda: view.fetches >= 1)
        assert view.shown is not None and view.shown.earlier_runs
        assert [(c.key, c.old, c.new) for c in view.shown.changes] == [("io_threads", "4", "6")]
        assert "all runs" in str(app.screen.query_one("#limit-history-title", Label).render())

        await pilot.press(*"cpu_threads", "enter", "3", "enter")
        assert await until(pilot, lambda: view.shown is not None and len(view.shown.changes) == 2)
        assert [(c.key, c.new) for c in view.shown.changes] == [("cpu_threads", "3"), ("io_threads", "6")]
        lines = shown_lines(view)
        assert any(re.fullmatch(r" \d\d:\d\d:\d\d  cpu_threads  2 → 3  by console *", line) for line in lines)
        assert "2026-01-01" in lines[-2]  # the earlier run's day heading, in local time
        scroll = view.query_one("#limit-history-scroll", VerticalScroll)
        assert scroll.max_scroll_x == 0 and view.region.right <= 80  # nothing runs past 80 columns


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_long_history_scrolls_with_page_keys_while_a_field_has_the_focus(
        locations: Locations, clock: FakeClock) -> None:
    await recorded(locations, clock, [("io_threads", str(n), str(n + 1)) for n in range(4, 34)])
    app = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("l")
        view = history_view(app)
        assert await until(pilot, lambda: view.fetches >= 1)
        assert view.shown is not None and len(view.shown.changes) == 30
        scroll = view.query_one("#limit-history-scroll", VerticalScroll)
        assert scroll.max_scroll_y > 0
        assert isinstance(app.focused, Input)
        await pilot.press("pagedown")
        await pilot.pause()
        assert scroll.scroll_y > 0 and isinstance(app.focused, Input)
        await pilot.press("pageup")
        await pilot.pause()
        assert scroll.scroll_y == 0


@pytest.mark.usefixtures("knowledge_ready")
async def test_with_the_ledger_held_by_another_medops_the_history_says_this_run_only_and_why(
        locations: Locations, clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    with held(locations.ops_db, "rw") as holder:
        app = live_app(locations)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await until(pilot, lambda: app.core_started)
            await pilot.press("l", *"cpu_threads", "enter", "3", "enter")
            view = history_view(app)
            assert await until(pilot, lambda: view.shown is not None and len(view.shown.changes) == 1)
            assert "this run only" in str(app.screen.query_one("#limit-history-title", Label).render())
            note = app.screen.query_one("#limit-history-note", Static)
            assert note.display and f"process {holder.pid}" in str(note.render())
            assert [(c.key, c.new) for c in view.shown.changes] == [("cpu_threads", "3")]


class FrozenHistoryCore(FrozenCore):
    """The frozen core, with a fixed history across runs (one long value among them)."""

    async def limit_change_history(self, limit: int = 50, key: str | None = None) -> LimitChangeHistory:
        changes = (LimitChange(NOW - 300, "io_threads", "8", "12", "console"),
                   LimitChange(NOW - 3_900, "alert_quota_remaining_percent", "10", "20", "console"),
                   LimitChange(NOW - 90_000, "default_model", "llama-3.1-8b-instant", "llama-3.3-70b-versatile",
                               "console"),
                   LimitChange(NOW - 93_600, "tuner_enabled", "true", "false", "console"),
                   LimitChange(NOW - 180_000, "query_cache_size", "1000", "500", "console"))
        return LimitChangeHistory(changes[:limit], earlier_runs=True)



async def open_history(pilot: Pilot[Any]) -> None:
    """Open the Limits form and wait for its history; no blinking cursor."""
    app = pilot.app
    assert isinstance(app, MedopsApp)
    await until(pilot, lambda: app.snapshots_applied > 0, within=2.0)
    await pilot.press("l")
    view = app.screen.query_one(LimitHistoryView)
    assert await until(pilot, lambda: view.fetches > 0, within=2.0)
    for field in app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_history_view(snap_compare: Callable[..., bool], locations: Locations, utc_time: None,
                          size: tuple[int, int]) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenHistoryCore())
    assert snap_compare(app, terminal_size=size, run_before=open_history)


@pytest.mark.parametrize("width", [80, 160])
def test_a_long_operator_name_is_cut_and_the_time_and_values_stay_whole(width: int) -> None:
    # A trial wrote a long operator name into the commands stream: the time read "19:…" even at 160 columns.
    from io import StringIO

    from rich.console import Console

    from medops.console.forms.limit_history import history_table
    from medops.core.snapshot import LimitChange

    change = LimitChange(1_767_225_600.0, "groq_concurrent", "10", "12", "x" * 300 + "@host")
    console = Console(file=StringIO(), width=width, color_system=None)
    console.print(history_table((change,)))
    line = console.file.getvalue().splitlines()[1]  # type: ignore[attr-defined]
    assert ":" in line.split()[0] and len(line.split()[0]) == 8  # HH:MM:SS
    assert "10 → 12" in line and line.rstrip().endswith("…")



LONG_MODEL = LimitChange(NOW, "default_model", "llama-3.1-8b-instant", "meta-llama/llama-4-scout-17b-16e-instruct",
                         "console")


class LongModelCore(FrozenCore):
    """The frozen core, its history one change of the default model to a long name."""

    async def limit_change_history(self, limit: int = 50, key: str | None = None) -> LimitChangeHistory:
        return LimitChangeHistory((LONG_MODEL,), earlier_runs=True)


async def test_at_80x24_a_long_model_name_wraps_only_after_a_slash_a_hyphen_or_a_space_and_stays_whole(
        locations: Locations) -> None:
    # It read "meta-llama/l" / "lama-4-scout" / "-17b-16e-ins" / "truct": cut inside words.
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=LongModelCore())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot)
        start = len(" HH:MM:SS") + 2 + len(LONG_MODEL.key) + 2  # after the time, the key and their gaps
        pieces = [line[start:].split("  by ")[0].rstrip() for line in shown_lines(history_view(app))[1:]]
    assert len(pieces) > 1  # it does not fit one line at 80 columns
    joined = ""
    for piece in pieces:  # a break inside a word would put a space inside it here
        joined += piece if not joined or joined[-1] in "/-" else " " + piece
    assert joined == transition(LONG_MODEL)
