"""How a snapshot test shoots the console: at which terminal sizes, and once the screen has settled."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from medops.console.app import MedopsApp

SIZES = [(80, 24), (160, 48)]


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
