"""Frozen screenshots of the Requests tab (pytest-textual-snapshot) at 80x24 and 160x48.

Update after a deliberate change with `pytest tests/test_console_requests_snapshots.py --snapshot-update`
and review the SVGs' text rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from medops.console.app import MedopsApp
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, RequestRow
from tests.console_data import FrozenCore, busy_snapshot
from tests.test_console_snapshots import SIZES, settle

pytestmark = pytest.mark.usefixtures("utc_time")


def requests_snapshot() -> CoreSnapshot:
    """A saturated core: two requests at Groq, the rest waiting for the minute, a slot, a retry or the batch."""
    base = busy_snapshot()
    at = base.taken_at
    rows = (
        RequestRow("7f3a9c01", "triage", "", "critical", "critical", "critical", "llama-3.1-8b-instant", 1_180,
                   4.2, 25.8, "sending", "at Groq, attempt 1", attempt=1, at_groq=1.4),
        RequestRow("gw-4410", "medication", "pharmacy-bot", "high", "high", "high", "llama-3.3-70b-versatile",
                   2_300, 3.1, None, "sending", "at Groq, attempt 2", attempt=2, at_groq=0.6),
        RequestRow("c81d0e55", "diagnosis", "", "normal", "critical", "critical", "llama-3.1-8b-instant", 1_124,
                   102.0, None, "waiting", "tpm full until 00:00:41", until=at + 41, attempt=0),
        RequestRow("0b77aa10", "triage", "", "high", "high", "critical", "llama-3.1-8b-instant", 1_090, 12.5,
                   47.5, "waiting", "tpm full until 00:00:41; behind 1 critical", until=at + 41),
        RequestRow("gw-4412", "documentation", "notes-svc", "normal", "normal", "high", "openai/gpt-oss-20b", 4_096,
                   2.0, 58.0, "backoff", "retry 1 after HTTP 503 in 2 s", until=at + 2, attempt=1),
        RequestRow("a4420f19", "oncall", "", "normal", "normal", "critical", "qwen/qwen3-32b", 800, 0.1, None,
                   "batching", "batch window closes in 1 s", until=at + 1),
    )
    return replace(base, scheduler=replace(base.scheduler, requests=rows, requests_held=214))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_requests_tab(snap_compare: Callable[..., bool], locations: Locations, size: tuple[int, int]) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(requests_snapshot()))
    assert snap_compare(app, terminal_size=size, press=["8"], run_before=settle)
