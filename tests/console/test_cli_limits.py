"""`medops limits history`: the changes a core run left in the data folder's ledger, read without a core."""

from __future__ import annotations

import json

import pytest

from medops.console.cli import main
from medops.console.commands import limits
from medops.core.clock import FakeClock
from medops.core.ledger.limit_history import MAX_HISTORY
from medops.core.settings.paths import Locations
from tests.helpers.core_runs import one_run
from tests.helpers.ledger_holder import held


@pytest.mark.usefixtures("knowledge_ready")
async def test_history_lists_the_changes_of_earlier_runs_newest_first_in_local_time(
        locations: Locations, clock: FakeClock, berlin_time: None, capsys: pytest.CaptureFixture[str]) -> None:
    await one_run(locations, clock, ("io_threads", "6"), ("cpu_threads", "3"))  # from 2026-01-01 00:00 UTC
    assert main(["limits", "history"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-01-01 01:01:00 CET  cpu_threads  2 -> 3  by console",
        "2026-01-01 01:00:00 CET  io_threads   4 -> 6  by console"]


@pytest.mark.usefixtures("knowledge_ready")
async def test_history_takes_a_key_a_count_and_prints_json(locations: Locations, clock: FakeClock, berlin_time: None,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    await one_run(locations, clock, ("io_threads", "6"), ("cpu_threads", "3"), ("io_threads", "8"))
    assert main(["limits", "history", "--key", "io_threads", "--limit", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [  # JSON Lines: one change a line
        {"at": clock.wall() - 60, "at_local": "2026-01-01T01:02:00+01:00", "key": "io_threads", "old": "6",
         "new": "8", "by": "console"}]
    assert err == ""
    assert main(["limits", "history", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["io_threads", "cpu_threads", "io_threads"]


def test_history_before_any_run_says_there_is_no_ledger_yet(locations: Locations,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["limits", "history"]) == 0
    assert capsys.readouterr().out.strip() == (f"no ledger at {locations.ops_db} yet: no medops has run with this "
                                               f"data folder")
    assert main(["limits", "history", "--json"]) == 0
    out, err = capsys.readouterr()
    assert out == ""  # no change: no line; the note is for the reader, on stderr
    assert err.strip() == (f"medops limits history: no ledger at {locations.ops_db} yet: no medops has run with "
                           "this data folder")


@pytest.mark.usefixtures("knowledge_ready")
async def test_history_of_a_key_never_changed_says_so(
        locations: Locations, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    assert main(["limits", "history", "--key", "cpu_threads"]) == 0
    assert capsys.readouterr().out.strip() == "no limit changes to cpu_threads recorded yet"


def test_history_of_a_key_medops_does_not_know_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["limits", "history", "--key", "nosuch"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == ("medops: --key nosuch is not a setting this medops knows; `medops config show` "
                                    "lists them")
    assert captured.out == ""


@pytest.mark.usefixtures("knowledge_ready")
async def test_history_while_another_medops_holds_the_ledger_names_it_and_what_to_do(
        locations: Locations, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    await one_run(locations, clock, ("io_threads", "6"))
    with held(locations.ops_db, "rw") as holder:
        assert main(["limits", "history"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"medops: ops.duckdb is in use by process {holder.pid}")
    assert "l opens the Limits form" in err and "run this again once it has stopped" in err
    assert "Traceback" not in err


def test_a_count_out_of_range_exits_2_saying_what_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["limits", "history", "--limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"medops: asked for 0 limit changes: ask for 1 to {MAX_HISTORY}"


def test_the_count_in_the_help_is_the_one_the_core_enforces() -> None:
    assert limits.MAX_HISTORY == MAX_HISTORY
