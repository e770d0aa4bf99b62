"""Frozen screenshots of the console (pytest-textual-snapshot) at 80x24 and 160x48.

The core is a `FrozenCore` serving one fixed snapshot, so every figure, time
and bar is the same on every run. Update after a deliberate change with
`pytest tests/test_console_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from medops.console.app import MedopsApp
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot
from tests.console_data import FrozenCore, before_any_request_snapshot

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
