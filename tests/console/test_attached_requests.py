"""The attached view's Requests tab: every member's published rows, each labelled with its member, bounded."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import DataTable

from medops.console.app import MedopsApp
from medops.console.panes.requests import RequestsPane
from medops.console.request_table import MEMBER_WIDTH, member_text, who
from medops.core.fleet.attached import fleet_snapshot
from medops.core.groq.scheduler import REQUEST_ROWS
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import StoreSnapshot
from tests.helpers.console_data import FrozenCore
from tests.helpers.published_rows import published, row, view
from tests.helpers.waiting import until

STORE = StoreSnapshot("redis://store", "", "up", None, 0.0, 0.0, 2, 0, 0.0, 0, attached=True)


def test_every_members_rows_are_listed_with_their_member_in_flight_first_then_oldest() -> None:
    built = fleet_snapshot(view({"ward": published(row("w1", 5.0), row("w2", 50.0, "sending")),
                                 "lab": published(row("l1", 20.0), held=7)}), STORE)
    rows = built.scheduler.requests
    assert [(r.member, r.request_id) for r in rows] == [("ward", "w2"), ("lab", "l1"), ("ward", "w1")]
    assert built.scheduler.requests_held == 9
    assert who(rows[1]) == "lab/triage"


def test_the_merged_rows_are_bounded() -> None:
    many = tuple(row(f"r{i}", float(i)) for i in range(REQUEST_ROWS))
    built = fleet_snapshot(view({"ward": published(*many), "lab": published(*many)}), STORE)
    assert len(built.scheduler.requests) == REQUEST_ROWS


def test_a_long_member_name_is_cut_in_the_middle_keeping_its_host_and_its_pid_and_suffix() -> None:
    long = replace(row("r1", 1.0), member="ip-10-0-3-17.ec2.internal-4121-a1b2c3")
    assert member_text(long) == "ip-10…121-a1b2c3" and len(member_text(long)) == MEMBER_WIDTH
    assert member_text(replace(long, member="ward7-88-a1b2c3")) == "ward7-88-a1b2c3"  # short enough: whole
    assert member_text(replace(long, member="\x1b]52;c;" + "x" * 30)) == "␛]52;…xxxxxxxxxx"  # inert, then cut


async def test_at_80_columns_the_attached_requests_tab_shows_the_member_holding_each_row(
        locations: Locations) -> None:
    # The agent/key column named the member, but at 80 columns it is off screen: an on-call engineer could not
    # tell which member to act on.
    waiting = replace(row("5f0c2a9e3b7d4e11a8c6", 5.0), reason="tpm full until 00:00:41; behind 1 critical")
    sending = replace(row("9d41b7c0e2f34a5b9c1d", 20.0, "sending"), reason="at Groq, attempt 1")
    snapshot = fleet_snapshot(view({"ward7-4121-a1b2": published(waiting), "lab-88-d4e5f6": published(sending)}),
                              STORE)
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(snapshot))
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.press("8")
        table = app.query_one("#requests-table", DataTable)
        assert await until(pilot, lambda: table.row_count == 2)
        await pilot.pause()
        screen = app.export_screenshot().replace("&#160;", " ")  # the SVG keeps spaces as nbsp
        assert "ward7-4121-a1b2" in screen and "lab-88-d4e5f6" in screen


async def test_one_id_listed_by_two_members_or_twice_by_one_is_shown_without_a_crash(locations: Locations) -> None:
    # Found trying the tab over a forged store: a repeated id made the table raise (its rows were keyed by id).
    same = row("5f0c2a9e3b7d", 5.0)
    snapshot = fleet_snapshot(view({"ward": published(same, same), "lab": published(same)}), STORE)
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(snapshot))
    async with app.run_test(size=(160, 48)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.press("8")
        table = app.query_one("#requests-table", DataTable)
        assert await until(pilot, lambda: table.row_count == 2)  # ward's and lab's; ward's forged repeat skipped
        pane = app.query_one(RequestsPane)
        await pilot.press("down")
        picked = pane.selected()
        assert picked is not None and picked.request_id == "5f0c2a9e3b7d"
        assert app.is_running
