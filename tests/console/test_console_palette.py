"""The command palette's entries, built over a stand-in for the app: the palette needs only `PaletteHost`."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from medops.console import palette
from medops.console.palette import PaletteHost, medops_commands
from medops.core.snapshot import CoreSnapshot
from tests.helpers.console_data import busy_snapshot


class Host:
    """Records what the palette's entries ask for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, object]] = []
        self.display_paused = False
        self.latest: CoreSnapshot | None = busy_snapshot()
        self.medops_themes: Sequence[str] = ("medops-dark",)

    def action_toggle_display(self) -> None: self.asked.append(("display", None))
    def action_toggle_intake(self) -> None: self.asked.append(("intake", None))
    def refresh_steps(self) -> list[float]: return [1.0, 2.0]
    def set_refresh_interval(self, seconds: float) -> None: self.asked.append(("refresh", seconds))
    def use_theme(self, name: str) -> None: self.asked.append(("theme", name))
    def action_show_tab(self, tab: str) -> None: self.asked.append(("tab", tab))
    def set_graph_window(self, seconds: float) -> None: self.asked.append(("span", seconds))
    def act_on_alert(self, how: str, alert: str) -> None: self.asked.append((how, alert))
    def fleet_act(self, op: str, target: str) -> None: self.asked.append((op, target))
    def action_limits(self) -> None: self.asked.append(("limits", None))
    def action_help(self) -> None: self.asked.append(("help", None))


def test_the_palette_builds_its_entries_over_any_host_and_they_ask_the_host() -> None:
    host = Host()
    typed: PaletteHost = host
    commands = {command.title: command for command in medops_commands(typed, ("overview", "fleet"))}
    commands["Graph span: 1h"].callback()
    commands["Open fleet"].callback()
    commands["Acknowledge alert: quota_low:llama-3.3-70b-versatile"].callback()
    assert host.asked == [("span", 3600.0), ("tab", "fleet"), ("acknowledge", "quota_low:llama-3.3-70b-versatile")]


def test_the_palette_does_not_import_the_app() -> None:
    tree = ast.parse(Path(palette.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "medops.console.app" not in imported
