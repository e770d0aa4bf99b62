"""Fleet members on one data folder each keep a ledger of their own; without a fleet the second runs without."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medops.core.clock import FakeClock
from medops.core.ledger.writer import OFF, READ_WRITE, Ledger
from tests.helpers.ledger_holder import HOLDER


@contextmanager
def held(*paths: Path) -> Iterator[None]:
    """Other processes holding these files read-write, as other medops would."""
    holders = []
    try:
        for path in paths:
            process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "rw"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
            assert process.stdout is not None and process.stdout.readline().strip() == "holding"
            holders.append(process)
        yield
    finally:
        for process in holders:
            process.communicate(input="", timeout=30)


async def test_a_fleet_member_finding_the_ledger_held_records_to_a_file_of_its_own(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ops.duckdb", FakeClock(), file_per_instance=True)
    with held(tmp_path / "ops.duckdb", tmp_path / "ops-2.duckdb"):
        await ledger.start()
        try:
            assert (ledger.mode, ledger.path.name) == (READ_WRITE, "ops-3.duckdb")
        finally:
            await ledger.stop()


async def test_without_a_fleet_the_second_process_runs_with_the_ledger_off(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ops.duckdb", FakeClock())
    with held(tmp_path / "ops.duckdb"):
        await ledger.start()
        try:
            assert ledger.mode == OFF and not (tmp_path / "ops-2.duckdb").exists()
        finally:
            await ledger.stop()
