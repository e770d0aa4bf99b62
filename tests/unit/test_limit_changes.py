"""Limit changes across runs: real ledger files, a second run reading the first's changes, a locked ledger."""

from __future__ import annotations

import pytest

from medops.core.clock import FakeClock
from medops.core.ledger.across_runs import HistoryRefused, merged
from medops.core.ledger.limit_history import MAX_HISTORY, latest_changes, read_ledger_file
from medops.core.ledger.writer import OFF, READ_ONLY, Ledger, LedgerUnavailable
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import LimitChange
from tests.helpers.core_runs import one_run, small_core
from tests.helpers.ledger_holder import held


def change(at: float, key: str = "io_threads", old: str = "4", new: str = "6") -> LimitChange:
    return LimitChange(at=at, key=key, old=old, new=new, by="console")


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_change_made_in_one_run_is_listed_by_the_next(locations: Locations, clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    second = small_core(locations, clock)
    await second.start()
    try:
        second.set_limit("query_cache_size", "50")
        history = await second.limit_change_history()
    finally:
        await second.stop()
    assert history.earlier_runs and history.note == ""
    assert [(c.key, c.old, c.new, c.by) for c in history.changes] == [
        ("query_cache_size", str(Settings().query_cache_size), "50", "console"), ("io_threads", "4", "6", "console")]
    assert history.changes[0].at > history.changes[1].at


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_change_not_yet_flushed_is_listed_once(locations: Locations, clock: FakeClock) -> None:
    core = small_core(locations, clock)
    await core.start()
    try:
        core.set_limit("io_threads", "6")
        assert core.snapshot().ledger.pending >= 1  # still in the ledger's buffer
        before_flush = await core.limit_change_history()
        await clock.advance(5)  # several flushes
        after_flush = await core.limit_change_history()
    finally:
        await core.stop()
    assert before_flush.changes == after_flush.changes == core.snapshot().limit_changes
    assert len(after_flush.changes) == 1


@pytest.mark.usefixtures("knowledge_ready")
async def test_the_latest_n_are_listed_newest_first_and_a_key_filters_them(locations: Locations,
                                                                           clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "5"), ("cpu_threads", "3"), ("io_threads", "7"))
    core = small_core(locations, clock)
    await core.start()
    try:
        latest_two = await core.limit_change_history(limit=2)
        core.set_limit("io_threads", "9")
        io_only = await core.limit_change_history(key="io_threads")
        unknown = await core.limit_change_history(key="no_such_key")
    finally:
        await core.stop()
    assert [(c.key, c.new) for c in latest_two.changes] == [("io_threads", "7"), ("cpu_threads", "3")]
    assert [(c.old, c.new) for c in io_only.changes] == [("4", "9"), ("5", "7"), ("4", "5")]
    assert unknown.changes == () and unknown.earlier_runs


@pytest.mark.usefixtures("knowledge_ready")
async def test_with_the_ledger_locked_elsewhere_only_this_run_is_listed_and_it_says_why(
        locations: Locations, clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    with held(locations.ops_db, "rw") as holder:
        core = small_core(locations, clock)
        await core.start()
        try:
            assert core.snapshot().ledger.mode == OFF
            core.set_limit("cpu_threads", "3")
            history = await core.limit_change_history()
        finally:
            await core.stop()
    assert not history.earlier_runs
    assert [(c.key, c.new) for c in history.changes] == [("cpu_threads", "3")]
    assert "earlier runs' changes cannot be shown" in history.note and f"process {holder.pid}" in history.note


@pytest.mark.usefixtures("knowledge_ready")
async def test_with_the_ledger_read_only_earlier_runs_and_this_one_are_merged(
        locations: Locations, clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    with held(locations.ops_db, "ro"):
        core = small_core(locations, clock)
        await core.start()
        try:
            assert core.snapshot().ledger.mode == READ_ONLY
            core.set_limit("cpu_threads", "3")
            history = await core.limit_change_history()
        finally:
            await core.stop()
    assert history.earlier_runs
    assert [(c.key, c.new) for c in history.changes] == [("cpu_threads", "3"), ("io_threads", "6")]
    assert "changes of this run are not recorded" in history.note


async def test_a_ledger_not_started_says_so_rather_than_listing_nothing(locations: Locations,
                                                                        clock: FakeClock) -> None:
    ledger = Ledger(locations.ops_db, clock)
    history = await latest_changes(ledger, (change(clock.wall()),), 10)
    assert history.changes == (change(clock.wall()),) and not history.earlier_runs
    assert "the ledger is off (not started)" in history.note


async def test_a_count_outside_the_allowed_range_is_refused(locations: Locations, clock: FakeClock) -> None:
    ledger = Ledger(locations.ops_db, clock)
    for bad in (0, MAX_HISTORY + 1):
        with pytest.raises(HistoryRefused, match=f"ask for 1 to {MAX_HISTORY}"):
            await latest_changes(ledger, (), bad)
    with pytest.raises(HistoryRefused):
        read_ledger_file(locations.ops_db, 0)


def test_merging_adds_what_the_ledger_lacks_and_counts_repeats() -> None:
    recorded = (change(20.0, new="8"), change(10.0))
    this_run = (change(30.0, new="9"), change(30.0, new="9"), change(20.0, new="8"))
    assert merged(recorded, this_run, at=lambda c: c.at) == [change(30.0, new="9"), change(30.0, new="9"),
                                                             change(20.0, new="8"), change(10.0)]


@pytest.mark.usefixtures("knowledge_ready")
async def test_the_ledger_file_is_read_without_a_core(locations: Locations, clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "6"), ("cpu_threads", "3"))
    history = read_ledger_file(locations.ops_db, 10)
    assert [(c.key, c.new) for c in history.changes] == [("cpu_threads", "3"), ("io_threads", "6")]
    assert read_ledger_file(locations.ops_db, 10, key="io_threads").changes == history.changes[1:]


def test_a_missing_ledger_file_is_named_not_created(locations: Locations) -> None:
    history = read_ledger_file(locations.ops_db, 10)
    assert history.changes == () and "no ledger at" in history.note
    assert not locations.ops_db.exists()


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_ledger_file_held_by_a_running_medops_names_the_process_and_what_to_do(
        locations: Locations, clock: FakeClock) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    with held(locations.ops_db, "rw") as holder, pytest.raises(LedgerUnavailable) as caught:
        read_ledger_file(locations.ops_db, 10)
    assert f"process {holder.pid}" in str(caught.value) and "run this again once it has stopped" in str(caught.value)
