"""A small real core over a test's data folder, and one run of it that leaves limit changes in the ledger."""

from __future__ import annotations

from medops.core.clock import FakeClock
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations


def small_core(locations: Locations, clock: FakeClock) -> ResourceCore:
    return ResourceCore(Settings(max_cases_in_memory=4, case_memory_mb=1, cpu_threads=2, io_threads=4,
                                 process_pool_size=1), locations, clock)


async def one_run(locations: Locations, clock: FakeClock, *changes: tuple[str, str]) -> None:
    """Start a core, make the changes a minute apart, stop it (which writes the ledger)."""
    core = small_core(locations, clock)
    await core.start()
    try:
        for key, value in changes:
            core.set_limit(key, value)
            await clock.advance(60)
    finally:
        await core.stop()
