"""Frozen screenshots of the console (pytest-textual-snapshot) at 80x24 and 160x48.

The core is a `FrozenCore` serving one fixed snapshot, so every figure, time
and bar is the same on every run. Update after a deliberate change with
`pytest tests/test_console_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from medops.console.app import MedopsApp
from medops.console.panes.fleet import FleetPane
from medops.console.panes.vitals import VitalsPane
from medops.core.fleet.attached import fleet_snapshot
from medops.core.fleet.view import FleetView, FleetWindow, MemberRow, MemberState
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, StoreSnapshot
from tests.console_data import FrozenCore, before_any_request_snapshot, busy_snapshot

SIZES = [(80, 24), (160, 48)]

# The console shows local times: screenshots are taken in UTC, whatever this machine's zone.
pytestmark = pytest.mark.usefixtures("utc_time")


def frozen_app(locations: Locations, theme: str | None = None, snapshot: CoreSnapshot | None = None) -> MedopsApp:
    settings = Settings(refresh_interval=60.0)
    return MedopsApp(settings, locations, theme, core=FrozenCore(snapshot))


async def settle(pilot: Pilot[Any]) -> None:
    """Stop cursors blinking and let the first snapshot land."""
    app = pilot.app
    assert isinstance(app, MedopsApp)
    for field in app.query(Input):
        field.cursor_blink = False
    for area in app.query(TextArea):
        area.cursor_blink = False
    for _ in range(100):
        if app.snapshots_applied:
            break
        await pilot.pause(0.02)
    assert app.snapshots_applied
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare: Callable[..., bool], locations: Locations, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_app(locations), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_before_any_request(snap_compare: Callable[..., bool], locations: Locations,
                                     size: tuple[int, int]) -> None:
    app = frozen_app(locations, snapshot=before_any_request_snapshot())
    assert snap_compare(app, terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_graphs(snap_compare: Callable[..., bool], locations: Locations, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_app(locations), press=["2"], terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_paused_with_the_contrast_theme(snap_compare: Callable[..., bool], locations: Locations,
                                        size: tuple[int, int]) -> None:
    assert snap_compare(frozen_app(locations, "medops-contrast"), press=["space", "i"], terminal_size=size,
                        run_before=settle)


def test_prompt_form_at_80x24(snap_compare: Callable[..., bool], locations: Locations) -> None:
    assert snap_compare(frozen_app(locations), press=["3"], terminal_size=(80, 24), run_before=settle)


def test_help_at_80x24(snap_compare: Callable[..., bool], locations: Locations) -> None:
    assert snap_compare(frozen_app(locations), press=["f1"], terminal_size=(80, 24), run_before=settle)


def fixed_fleet() -> FleetView:
    """Three members as a store would list them: one busy, one paused and stale, one gone."""


    def row(name: str, host: str, pid: int, role: str, age: float, state: str, queued: tuple[int, int, int],
            done: int, rpm: int, paused: bool = False) -> MemberRow:
        return MemberRow(name, host, pid, role, "0.9.0", FLEET_READ_AT - 3_725.0 - pid, age, FLEET_READ_AT - age,
                         MemberState(state), dict(zip(("critical", "high", "normal"), queued, strict=True)), 2, done,
                         1, 3, {"rpm": rpm, "rpd": rpm * 40}, 12.0, 31.0, 40.0, 1, paused)

    members = (row("console-ward7-4121", "ward7", 4121, "console", 0.4, "alive", (0, 2, 5), 1_240, 12),
               row("worker-lab-88", "lab", 88, "worker", 7.2, "stale", (1, 0, 9), 310, 6, paused=True),
               row("worker-lab-90", "lab", 90, "worker", 14.0, "gone", (0, 0, 0), 77, 0))
    windows = (FleetWindow("llama-3.1-8b-instant", "rpm", 18, 30, {"console-ward7-4121": 12, "worker-lab-88": 6}),
               FleetWindow("llama-3.1-8b-instant", "rpd", 720, 14_400,
                           {"console-ward7-4121": 480, "worker-lab-88": 240}),
               FleetWindow("llama-3.1-8b-instant", "tpm", 9_100, 12_000, {"console-ward7-4121": 9_100}),
               FleetWindow("llama-3.1-8b-instant", "tpd", 97_050, 100_000, {"console-ward7-4121": 97_050}))
    return FleetView("redis://127.0.0.1:6379/0", FLEET_READ_AT, members, windows,
                     {"console-ward7-4121": replace(busy_snapshot(), taken_at=FLEET_READ_AT - 1)})


FLEET_READ_AT = 1_780_000_000.0


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fleet_tab(snap_compare: Callable[..., bool], locations: Locations, size: tuple[int, int]) -> None:
    async def read() -> FleetView:
        return fixed_fleet()

    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(), fleet_reader=read)

    async def shown(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("7")
        pane = app.query_one(FleetPane)
        for _ in range(100):
            if pane.reads:
                break
            await pilot.pause(0.02)
        assert pane.reads
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=shown)


def attached_store() -> StoreSnapshot:
    return StoreSnapshot(url="redis://***@fleet-store.ward7:6379/0", instance="", state="up", down_since=None,
                         rtt_p50_ms=0.4, rtt_p99_ms=1.2, members_alive=1, share=0, clock_skew=0.0, pending=0,
                         attached=True)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_attached_to_the_fleet(snap_compare: Callable[..., bool], locations: Locations,
                                        size: tuple[int, int]) -> None:
    """`medops --attach`: the organisation drawn from the members' snapshots, the fleet line on top."""
    async def read() -> FleetView:
        return fixed_fleet()

    snapshot = fleet_snapshot(fixed_fleet(), attached_store())
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(snapshot), fleet_reader=read)

    async def shown(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        vitals = app.query_one(VitalsPane)
        for _ in range(100):
            if vitals.fleet:
                break
            await pilot.pause(0.02)
        assert vitals.fleet
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=shown)
