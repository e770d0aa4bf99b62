"""Frozen screenshots of the Requests tab (pytest-textual-snapshot) at 80x24 and 160x48.

Update after a deliberate change with `pytest tests/console/test_console_requests_snapshots.py --snapshot-update`
and review the SVGs' text rows.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from medops.console.app import MedopsApp
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import FrozenCore, requests_snapshot
from tests.helpers.screenshots import SIZES, settle

pytestmark = pytest.mark.usefixtures("utc_time")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_requests_tab(snap_compare: Callable[..., bool], locations: Locations, size: tuple[int, int]) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(requests_snapshot()))
    assert snap_compare(app, terminal_size=size, press=["8"], run_before=settle)
