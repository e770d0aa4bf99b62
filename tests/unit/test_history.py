"""Request and alert history across runs: a real core, the local endpoint, real ledger files, paging back."""

from __future__ import annotations

import duckdb
import pytest

from medops.core.clock import FakeClock
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.ledger.across_runs import HistoryRefused
from medops.core.ledger.history import MAX_PAGE, Before, RequestHistory, alert_page, request_page
from medops.core.ledger.writer import Ledger
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import Alert
from medops.core.watch.tuner import TunerMetrics
from tests.helpers.ledger_holder import held
from tests.helpers.request_records import MODEL, record, recorded

SECRET = "Patient Ada Quill, MRN 4471-SECRET, reports chest pain"
OTHER_MODEL = "qwen/qwen3-32b"


def small_core(locations: Locations, clock: FakeClock | None = None) -> ResourceCore:
    return ResourceCore(Settings(max_cases_in_memory=4, case_memory_mb=1, cpu_threads=2, io_threads=4,
                                 process_pool_size=1), locations, clock)


async def asked(core: ResourceCore, agent: str, request_id: str, model: str = MODEL) -> None:
    await core.ask(PromptRequest(f"{SECRET} ({request_id})", agent, Priority.HIGH, model=model,
                                 max_completion_tokens=40, request_id=request_id))


async def every_page(ledger: Ledger, limit: int, **filters: str) -> list[RequestHistory]:
    """Page back from the latest until nothing is older (a mark that never moves fails, not loops)."""
    pages = [await request_page(ledger, None, limit, **filters)]
    while pages[-1].older is not None:
        assert len(pages) < 50, "paging back never reached the oldest request"
        pages.append(await request_page(ledger, pages[-1].older, limit, **filters))
    return pages


@pytest.mark.usefixtures("knowledge_ready")
async def test_requests_asked_through_the_core_are_listed_newest_first_with_their_figures(
        locations: Locations) -> None:
    core = small_core(locations)
    await core.start()
    try:
        await asked(core, "triage", "first")
        await asked(core, "medication", "second")
        history = await core.request_history()
    finally:
        await core.stop()
    assert [(r.request_id, r.agent, r.model, r.outcome, r.status, r.attempts) for r in history.requests] == [
        ("second", "medication", MODEL, "ok", 200, 1), ("first", "triage", MODEL, "ok", 200, 1)]
    first = history.requests[1]
    assert first.prompt_tokens > 0 and first.completion_tokens > 0 and first.latency >= first.queue_wait >= 0
    assert history.earlier_runs and history.note == "" and history.older is None


@pytest.mark.usefixtures("knowledge_ready")
async def test_no_prompt_text_reaches_the_history_or_the_ledger_file(locations: Locations) -> None:
    core = small_core(locations)
    await core.start()
    try:
        await asked(core, "triage", "r-1")
        history = await core.request_history()
    finally:
        await core.stop()
    assert len(history.requests) == 1
    assert "MRN" not in repr(history)
    with duckdb.connect(str(locations.ops_db), read_only=True) as connection:
        every_value = [value for table in ("requests", "admissions", "alerts")
                       for row in connection.execute(f"SELECT * FROM {table}").fetchall() for value in row]
    assert "r-1" in every_value and not any("MRN" in str(value) for value in every_value)


@pytest.mark.usefixtures("knowledge_ready")
async def test_an_earlier_runs_requests_come_after_this_runs_and_none_is_listed_twice(
        locations: Locations, clock: FakeClock) -> None:
    await recorded(locations, clock, [record(clock.wall() - 600, request_id="old-1"),
                                      record(clock.wall() - 300, request_id="old-2")])
    core = small_core(locations)
    await core.start()
    try:
        await asked(core, "triage", "new-1")
        unflushed = await core.request_history()  # asked just now: still in the ledger's buffer
        again = await core.request_history()
    finally:
        await core.stop()
    assert [r.request_id for r in unflushed.requests] == ["new-1", "old-2", "old-1"]
    assert again == unflushed


async def test_paging_back_lists_every_request_once_even_when_many_share_an_instant(
        locations: Locations, clock: FakeClock) -> None:
    times = [1_000.0] * 3 + [1_001.0] * 8 + [1_002.0] * 4  # eight in one instant: pages end inside it
    await recorded(locations, clock, [record(at, request_id=f"r{n}") for n, at in enumerate(times)])
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    try:
        pages = await every_page(ledger, 3)
    finally:
        await ledger.stop()
    assert [page.older for page in pages] == [Before(1_002.0, 3), Before(1_001.0, 2), Before(1_001.0, 5),
                                              Before(1_001.0, 8), None]
    listed = [r.request_id for page in pages for r in page.requests]
    assert sorted(listed) == sorted(f"r{n}" for n in range(15))
    assert [r.at_wall for page in pages for r in page.requests] == sorted(times, reverse=True)


async def test_a_page_filtered_by_model_or_agent_holds_only_those(locations: Locations, clock: FakeClock) -> None:
    await recorded(locations, clock, [record(100.0 + n, agent=("triage", "medication")[n % 2],
                                             model=(MODEL, OTHER_MODEL)[n % 3 == 0], request_id=f"r{n}")
                                      for n in range(12)])
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    try:
        by_model = [r for page in await every_page(ledger, 2, model=OTHER_MODEL) for r in page.requests]
        by_agent = [r for page in await every_page(ledger, 2, agent="medication") for r in page.requests]
        both = await request_page(ledger, None, 10, model=OTHER_MODEL, agent="medication")
    finally:
        await ledger.stop()
    assert [r.request_id for r in by_model] == ["r9", "r6", "r3", "r0"]
    assert [r.request_id for r in by_agent] == ["r11", "r9", "r7", "r5", "r3", "r1"]
    assert [r.request_id for r in both.requests] == ["r9", "r3"]


@pytest.mark.usefixtures("knowledge_ready")
async def test_with_the_ledger_locked_elsewhere_only_this_run_is_listed_and_it_says_why(
        locations: Locations, clock: FakeClock) -> None:
    await recorded(locations, clock, [record(clock.wall() - 60, request_id="old-1")])
    with held(locations.ops_db, "rw") as holder:
        core = small_core(locations)
        await core.start()
        try:
            await asked(core, "triage", "new-1")
            history = await core.request_history()
            alerts = await core.alert_history()
            mode = core.snapshot().ledger.mode
        finally:
            await core.stop()
    assert mode == "off"
    assert [r.request_id for r in history.requests] == ["new-1"] and not history.earlier_runs
    assert "earlier runs' requests cannot be shown" in history.note and f"process {holder.pid}" in history.note
    assert "latest 1000 are kept in memory" in history.note
    assert not alerts.earlier_runs and "earlier runs' alerts cannot be shown" in alerts.note


@pytest.mark.usefixtures("knowledge_ready")
async def test_with_the_ledger_read_only_earlier_runs_and_this_one_are_merged_and_it_says_so(
        locations: Locations, clock: FakeClock) -> None:
    await recorded(locations, clock, [record(clock.wall() - 60, request_id="old-1")])
    with held(locations.ops_db, "ro"):
        core = small_core(locations)
        await core.start()
        try:
            await asked(core, "triage", "new-1")
            history = await core.request_history()
        finally:
            await core.stop()
    assert [r.request_id for r in history.requests] == ["new-1", "old-1"] and history.earlier_runs
    assert "requests of this run are not recorded" in history.note


async def test_a_ledger_written_before_attempts_and_ids_were_kept_still_lists_its_requests(
        locations: Locations, clock: FakeClock) -> None:
    locations.ensure()
    with duckdb.connect(str(locations.ops_db)) as connection:
        connection.execute("CREATE TABLE requests (at_wall DOUBLE NOT NULL, agent VARCHAR NOT NULL, "
                           "priority VARCHAR NOT NULL, model VARCHAR NOT NULL, prompt_tokens INTEGER NOT NULL, "
                           "completion_tokens INTEGER NOT NULL, latency DOUBLE NOT NULL, queue_wait DOUBLE NOT NULL, "
                           "outcome VARCHAR NOT NULL, status INTEGER)")
        connection.execute("INSERT INTO requests VALUES (500.0, 'triage', 'high', $1, 10, 5, 0.3, 0.0, 'ok', 200)",
                           [MODEL])
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    try:
        ledger.record_request(record(clock.wall(), request_id="new-1"))
        history = await request_page(ledger, None, 10)
    finally:
        await ledger.stop()
    assert [(r.request_id, r.attempts, r.at_wall) for r in history.requests] == [
        ("new-1", 1, clock.wall()), ("", 0, 500.0)]


class FailsOnce:
    """Tuner figures that cannot be read the first time they are asked for."""

    def __init__(self) -> None:
        self.asked = 0

    def tuner_metrics(self) -> TunerMetrics | None:
        self.asked += 1
        if self.asked == 1:
            raise RuntimeError("sampling broke")
        return None


@pytest.mark.usefixtures("knowledge_ready")
async def test_an_alert_opened_and_cleared_in_the_core_is_listed_both_times_newest_first(
        locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(small_core(locations).settings, locations, clock, tuner_metrics=FailsOnce())
    await core.start()
    try:
        await clock.advance(core.settings.tuner_interval)  # the tuner's round fails: a failing part opens at once
        await clock.advance(10)  # no failure since: it clears
        history = await core.alert_history()
    finally:
        await core.stop()
    ours = [a for a in history.alerts if a.name == "internal:tuner"]
    assert [a.cleared_at is not None for a in ours] == [True, False]
    cleared, opened = ours
    assert opened.updated_at == opened.opened_at < cleared.updated_at == cleared.cleared_at
    assert history.earlier_runs and history.note == ""


async def test_alerts_page_back_across_runs(locations: Locations, clock: FakeClock) -> None:
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    for n in range(7):
        opened = Alert(f"pool_saturated:io{n}", "warning", "io pool saturated", opened_at=100.0 + n,
                       rule="pool_saturated", updated_at=100.0 + n)
        ledger.record_alert(opened)
    await ledger.stop()
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    try:
        first = await alert_page(ledger, None, 4)
        assert first.older is not None
        second = await alert_page(ledger, first.older, 4)
    finally:
        await ledger.stop()
    assert [a.name[-1] for a in (*first.alerts, *second.alerts)] == list("6543210")
    assert second.older is None
    newest = first.alerts[0]
    assert (newest.rule, newest.level, newest.message, newest.opened_at) == (
        "pool_saturated", "warning", "io pool saturated", 106.0)


async def test_a_page_of_none_or_too_many_rows_is_refused(locations: Locations, clock: FakeClock) -> None:
    ledger = Ledger(locations.ops_db, clock)
    for limit in (0, MAX_PAGE + 1):
        with pytest.raises(HistoryRefused, match=f"ask for 1 to {MAX_PAGE}"):
            await request_page(ledger, None, limit)
