"""The command palette's medops entries (ctrl+p): every key's action, by name, for those who do not know the keys.

The palette reaches the app through `PaletteHost` only, so this module never imports the app (which imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Protocol

from textual.app import SystemCommand

from medops.console.panes.graphs import WINDOWS, span_label
from medops.core.snapshot import CoreSnapshot


class PaletteHost(Protocol):
    """What the palette's entries read from the console and ask of it."""

    @property
    def display_paused(self) -> bool: ...
    @property
    def latest(self) -> CoreSnapshot | None: ...
    @property
    def medops_themes(self) -> Sequence[str]: ...

    def action_toggle_display(self) -> None: ...
    def action_toggle_intake(self) -> None: ...
    def refresh_steps(self) -> list[float]: ...
    def set_refresh_interval(self, seconds: float) -> None: ...
    def use_theme(self, name: str) -> None: ...
    def action_show_tab(self, tab: str) -> None: ...
    def set_graph_window(self, seconds: float) -> None: ...
    def act_on_alert(self, how: str, alert: str) -> None: ...
    def fleet_act(self, op: str, target: str) -> None: ...
    def action_limits(self) -> None: ...
    def action_help(self) -> None: ...


def medops_commands(app: PaletteHost, tabs: Sequence[str]) -> Iterable[SystemCommand]:
    """Display, intake, refresh rate, themes, `tabs`, graph spans, limits and help, as the app stands now."""
    yield SystemCommand("Pause display" if not app.display_paused else "Resume display",
                        "Freeze or unfreeze the panes (the core keeps running)", app.action_toggle_display)
    paused = app.latest is not None and app.latest.paused
    yield SystemCommand("Resume intake" if paused else "Pause intake",
                        "Hold or release new work in the core's queues", app.action_toggle_intake)
    for step in app.refresh_steps():
        yield SystemCommand(f"Refresh every {step:g}s", "Change the console's refresh rate",
                            partial(app.set_refresh_interval, step))
    for name in app.medops_themes:
        yield SystemCommand(f"Theme: {name}", "Switch to this medops theme", partial(app.use_theme, name))
    for tab in tabs:
        yield SystemCommand(f"Open {tab}", f"Show the {tab} tab", partial(app.action_show_tab, tab))
    for seconds in WINDOWS:
        yield SystemCommand(f"Graph span: {span_label(seconds)}", "How far back the CPU and memory graphs reach",
                            partial(app.set_graph_window, seconds))
    for alert in (a for a in (app.latest.alerts if app.latest else ()) if a.cleared_at is None):
        yield SystemCommand(f"Acknowledge alert: {alert.name}", "Mark it seen: still listed, no longer news",
                            partial(app.act_on_alert, "acknowledge", alert.name))
        yield SystemCommand(f"Silence alert for 1 h: {alert.name}", "Announce nothing about it for an hour",
                            partial(app.act_on_alert, "silence", alert.name))
    for op in ("pause", "resume"):
        yield SystemCommand(f"Fleet: {op} intake on every member", "Through the fleet's store; each member answers",
                            partial(app.fleet_act, op, "*"))
    yield SystemCommand("Change a limit", "Set a pool size, threshold or timeout of the running core",
                        app.action_limits)
    yield SystemCommand("Help", "Keys and panes", app.action_help)
