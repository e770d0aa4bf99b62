"""Case memory and the context pool inside the running core."""

from __future__ import annotations

from pathlib import Path

import pytest

from medops.core.clock import FakeClock
from medops.core.resource_core import CoreNotRunning, ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations

# Every test here starts a core: each gets the session's knowledge base (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("knowledge_ready")


def _exists(path: Path) -> bool:
    return path.exists()


async def test_the_core_opens_case_memory_at_start_and_unlinks_it_at_stop(
        locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(max_cases_in_memory=50, case_memory_mb=1), locations, clock)
    with pytest.raises(CoreNotRunning):
        core.cases  # noqa: B018
    await core.start()
    try:
        core.cases.store("case-1", {"complaint": "cough"})
        assert core.cases.get("case-1") == {"complaint": "cough"}
        segment = Path(core.cases.handle.path)
        slots = core.snapshot().slots
        assert (slots.total, slots.used, slots.slot_bytes) == (50, 1, 1024 * 1024 // 50)
        assert slots.segment == str(segment)
    finally:
        await core.stop()
    assert not _exists(segment)
    assert core.snapshot().slots.total == 0
    await core.stop()


async def test_the_core_reports_its_context_pool(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(agent_context_pool_size=3, context_leak_seconds=10), locations, clock)
    await core.start()
    try:
        core.contexts.acquire("triage")
        await clock.advance(11)
        contexts = core.snapshot().contexts
        assert (contexts.pool_size, contexts.idle, contexts.active, contexts.leaked) == (3, 2, 1, 1)
    finally:
        await core.stop()
    with pytest.raises(CoreNotRunning):
        core.contexts  # noqa: B018
