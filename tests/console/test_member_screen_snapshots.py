"""Frozen screenshots (pytest-textual-snapshot) of the Fleet tab's member screen listing the requests that
member published, one put off by the store saying whose requests go first, at 80x24 and 160x48: scrolled to
its requests, every row on its line, its columns aligned, no reason cut.

Update after a deliberate change with `pytest tests/console/test_member_screen_snapshots.py --snapshot-update` and
review the SVGs' text rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot

from medops.console.app import MedopsApp
from medops.console.panes.member_screen import MemberScreen
from medops.core.fleet.view import FleetView
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, RequestRow, SchedulerSnapshot
from tests.helpers.console_data import FLEET_READ_AT, FrozenCore, fixed_fleet, requests_snapshot
from tests.helpers.screenshots import SIZES, settle

pytestmark = pytest.mark.usefixtures("utc_time")

MEMBER = "console-ward7-4121"


def member_fleet() -> FleetView:
    """The fixed fleet, its busy member holding the Requests tab's rows and one the store put off behind the
    critical ones of worker-lab-88 (stale: still in line) and the high one of worker-lab-90 (gone: not)."""
    view = fixed_fleet()
    published = replace(requests_snapshot(), taken_at=FLEET_READ_AT - 1)
    put_off = RequestRow("e19b2c07", "triage", "intake-ward7", "normal", "normal", "high", "llama-3.1-8b-instant",
                         950, 6.0, 54.0, "waiting", "the fleet has room in 2 s", deferred=True)
    rows = (*published.scheduler.requests, put_off)
    published = replace(published, scheduler=replace(published.scheduler, requests=rows))

    def waiting(request_id: str, effective: str) -> RequestRow:
        return RequestRow(request_id, "triage", "", effective, effective, "critical", "llama-3.1-8b-instant", 900,
                          20.0, None, "waiting", "tpm full")

    def others(*ahead: RequestRow) -> CoreSnapshot:
        return replace(published, scheduler=SchedulerSnapshot(requests=ahead, requests_held=len(ahead)))

    return replace(view, snapshots={MEMBER: published, "worker-lab-88": others(*(waiting(f"c{i}", "critical")
                                                                                 for i in range(3))),
                                    "worker-lab-90": others(waiting("h1", "high"))})


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_member_screen_requests(snap_compare: Callable[..., bool], locations: Locations,
                                size: tuple[int, int]) -> None:
    async def read() -> FleetView:
        return member_fleet()

    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(), fleet_reader=read)

    async def shown(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("7")
        for _ in range(100):
            if isinstance(app.screen, MemberScreen):
                break
            if app.main.query("#fleet-table") and app.main.query_one("#fleet-table").row_count:  # type: ignore[attr-defined]
                await pilot.press("enter")
            await pilot.pause(0.02)
        screen = app.screen
        assert isinstance(screen, MemberScreen)
        for _ in range(100):
            if screen.reads:
                break
            await pilot.pause(0.02)
        screen.query_one("#member-requests").scroll_visible(animate=False, top=True)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=shown)
