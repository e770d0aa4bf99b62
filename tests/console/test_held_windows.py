"""A window held by an emptied store (10 used + 20 held of 30) is full wherever it is drawn: its percentage and
bar count the held part, while its figure stays the use ("10/30") with the held part said beside it."""

from __future__ import annotations

import re
from dataclasses import replace

from rich.text import Text

from medops.console.commands.status import summary_lines
from medops.console.panes.quota import model_lines
from medops.console.panes.vitals import fleet_line, model_line
from medops.core.snapshot import CoreSnapshot, ModelQuota, QuotaSnapshot, WindowUsage
from tests.helpers.console_data import FLEET_READ_AT, fixed_fleet

MODEL = "llama-3.1-8b-instant"
UNTIL = FLEET_READ_AT + 50.0


def held_model() -> ModelQuota:
    """rpm: 10 used and 20 held of 30 (an empty restart); the other windows nearly unused."""
    return ModelQuota(MODEL, (
        WindowUsage("rpm", 10, 30, 40.0, held=20, held_until=UNTIL, held_why="store restarted"),
        WindowUsage("rpd", 10, 14_400, 40.0),
        WindowUsage("tpm", 1_000, 100_000, 40.0),
        WindowUsage("tpd", 1_000, 1_000_000, 40.0)))


def plain(markup: str) -> str:
    """The text without its tags (Textual's `$warning` tags are no rich markup; no figure here holds a `[`)."""
    return Text.from_markup(re.sub(r"\[[^\]]*\]", "", markup)).plain


def test_the_overviews_model_line_reads_a_held_window_as_full_not_a_third_used() -> None:
    line = plain(model_line(held_model()))
    assert "rpm 100%" in line and "33%" not in line
    assert "[b reverse]rpm 100%[/]" in model_line(held_model())  # emphasised as the full window it is


def test_the_quota_panes_bar_fills_with_what_is_held_and_the_figure_stays_the_use() -> None:
    lines = [plain(line) for line in model_lines(held_model(), 80, default=True)]
    rpm = next(line for line in lines if line.startswith(" rpm "))
    assert "░" not in rpm and "█" in rpm  # full: no empty cell
    assert "10/30" in rpm
    assert any("rpm 20 held until" in line and "(store restarted)" in line for line in lines)


def test_medops_status_says_what_is_held_beside_the_use() -> None:
    snapshot = CoreSnapshot(taken_at=FLEET_READ_AT, uptime=1.0,
                            quota=QuotaSnapshot((held_model(),), default_model=MODEL))
    quota = next(line for line in summary_lines(snapshot) if line.startswith("quota"))
    assert "rpm 10/30 +20 held" in quota and "rpd 10/14,400  " in quota


def test_the_overviews_fleet_line_says_the_window_is_held() -> None:
    view = fixed_fleet()
    rpm = replace(view.windows[0], used=10, held=20, held_until=UNTIL, held_why="store restarted")
    line = plain(fleet_line(replace(view, windows=(rpm, *view.windows[1:]))))
    assert "rpm 10/30 tpm 9.1k/12k held │" in line
    assert "held" not in plain(fleet_line(view))
