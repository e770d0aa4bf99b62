"""The Overview's first screen at 80x24 shows a vital sign of every part, and the tab scrolls by keys."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import TabbedContent

from medops.console.app import MedopsApp
from medops.console.panes.quota import QuotaPane
from medops.console.panes.status import StatusLine
from medops.console.panes.vitals import VitalsPane, model_line
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, EndpointInfo, ModelQuota, StoreSnapshot, WindowUsage
from tests.helpers.console_data import NOW, FrozenCore, busy_snapshot
from tests.helpers.waiting import until

VITAL_SIGNS = ("queue", "crit 0 high 2 norm 7", "in flight 4/10",
               "llama-3.3-70b-versatile", "rpm  90%", "tpd  97%", "llama-3.1-8b-instant",
               "slots 412/1000", "contexts 39/100", "CPU 31%", "memory 52%",
               "duckdb 7/10", "cpu 2/2+5", "io 1/8", "proc 1/2", "http 4/100", "1 CRIT", "quota_low")


async def test_at_80x24_the_first_screen_shows_every_vital_sign(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.pause()
        vitals = app.query_one(VitalsPane)
        assert app.screen.region.contains_region(vitals.region)  # all of it on the first screen, none scrolled off
        shown = str(vitals.render())
        missing = [sign for sign in VITAL_SIGNS if sign not in shown]
        assert not missing, shown


async def test_the_overview_scrolls_by_keys_with_nothing_focused(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        grid = app.query_one("#overview-grid", VerticalScroll)
        assert await until(pilot, lambda: grid.max_scroll_y > 0)  # laid out: the panes are taller than 24 lines
        assert grid.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause(0.3)
        assert grid.scroll_y > 0
        await pilot.press("home")
        await pilot.pause(0.3)
        assert grid.scroll_y == 0
        await pilot.press("down")
        await pilot.pause(0.3)
        assert grid.scroll_y > 0


async def test_every_tab_key_works_from_the_history_tab(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        tabs = app.query_one("#tabs", TabbedContent)
        for key, pane in (("1", "overview"), ("2", "graphs-tab"), ("3", "prompt"), ("4", "document"),
                          ("5", "search")):
            await pilot.press("escape", "6")
            await pilot.pause()
            assert tabs.active == "history-tab"
            await pilot.press(key)
            await pilot.pause(0.2)
            assert tabs.active == pane, key  # 1 and 2 stayed on History: its focused table pulled it back


def test_a_window_counted_past_its_limit_reads_full_not_more() -> None:
    # A fleet's local share counts what the others may hold: 129 of a share of 30 is full, not "429%".
    def usage(used: int, limit: int) -> ModelQuota:
        return ModelQuota("llama-3.1-8b-instant", (WindowUsage("rpm", used, limit, 60.0),
                                                   WindowUsage("tpm", used * 10, limit * 200, 60.0)))

    assert "rpm 100%" in model_line(usage(129, 30)) and "429" not in model_line(usage(129, 30))
    assert "rpm 100%" in model_line(usage(0, 0))  # a share of 0 (store never reached): no room
    assert "rpm  50%" in model_line(usage(15, 30)) and "tpm   2%" in model_line(usage(15, 30))  # 150 of 6,000


def real_groq_with_the_store_down() -> CoreSnapshot:
    """A member on the real Groq, up three hours, its fleet store down: the longest status line a member has."""
    snapshot = busy_snapshot()
    store = StoreSnapshot("redis://store.internal:6379/0", "vm-1-aa", "down", NOW - 40, 0.4, 1.2, 3, 3, 0.0, 0)
    return replace(snapshot, endpoint=EndpointInfo("groq", "https://api.groq.com", True), uptime=3 * 3600 + 420,
                   quota=replace(snapshot.quota, store=store))


@pytest.mark.parametrize("store_down", [False, True])
async def test_the_status_line_at_80_columns_keeps_the_uptime_and_the_store_down_share(
        locations: Locations, store_down: bool) -> None:
    snapshot = real_groq_with_the_store_down()
    if not store_down:
        snapshot = replace(snapshot, quota=replace(snapshot.quota, store=replace(
            snapshot.quota.store, state="up", down_since=None)))  # type: ignore[type-var]
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(snapshot))  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.pause()
        status = app.query_one(StatusLine)
        shown = " ".join(" ".join(strip.text for strip in status.render_lines(Region(0, 0, *status.size))).split())
        assert "up 3h07m" in shown, shown
        if store_down:
            assert "share 1/3" in shown, shown


def a_member_whose_store_was_never_reached() -> CoreSnapshot:
    """A console whose fleet store never answered: no share learnt, so each window's limit here is 0."""
    snapshot = busy_snapshot()
    store = StoreSnapshot("redis://127.0.0.1:6377/0", "vm-1-aa", "down", NOW - 40, 0.0, 0.0, 0, 0, 0.0, 0,
                          "ConnectionError")
    empty = ModelQuota("llama-3.1-8b-instant", tuple(WindowUsage(name, 0, 0, 0.0, own=0)
                                                     for name in ("rpm", "rpd", "tpm", "tpd")))
    return replace(snapshot, quota=replace(snapshot.quota, models=(empty,), default_model=empty.model, store=store))


async def test_a_store_never_reached_reads_as_not_reached_not_as_spent_windows(locations: Locations) -> None:
    # #28 second trial: with no redis at store_url the Overview showed rpm/rpd/tpm/tpd at 100% (read as a spent
    # daily quota) and the quota pane four windows of 0/0.
    core = FrozenCore(a_member_whose_store_was_never_reached())
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    async with app.run_test(size=(160, 48)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        vitals = str(app.query_one(VitalsPane).render())
        assert "llama-3.1-8b-instant" in vitals and "quota store not reached" in vitals, vitals
        assert "100%" not in vitals
        quota = str(app.query_one(QuotaPane).render())
        assert "rpm rpd tpm tpd: not known until the quota store answers" in quota, quota
        assert "0/0" not in quota
