"""Frozen screenshots of the console (pytest-textual-snapshot) at 80x24 and 160x48.

The core is a `FrozenCore` serving one fixed snapshot, so every figure, time
and bar is the same on every run. Update after a deliberate change with
`pytest tests/console/test_console_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from medops.console.app import MedopsApp
from medops.console.panes.fleet import FleetPane
from medops.console.panes.vitals import VitalsPane
from medops.core.fleet.attached import fleet_snapshot
from medops.core.fleet.view import FleetView
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, StoreSnapshot
from tests.helpers.console_data import FrozenCore, before_any_request_snapshot, fixed_fleet
from tests.helpers.screenshots import SIZES, settle

# The console shows local times: screenshots are taken in UTC, whatever this machine's zone.
pytestmark = pytest.mark.usefixtures("utc_time")


def frozen_app(locations: Locations, theme: str | None = None, snapshot: CoreSnapshot | None = None) -> MedopsApp:
    settings = Settings(refresh_interval=60.0)
    return MedopsApp(settings, locations, theme, core=FrozenCore(snapshot))


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
