"""The Requests tab over a real core and a strict local endpoint: why each request waits, cancel, priority."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from textual.widgets import DataTable

from medops.console.app import MedopsApp
from medops.console.panes.requests import RequestsPane
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.requests import PromptRequest, PromptResult
from medops.core.groq.scheduler import RequestCancelled
from medops.core.groq.wait_reason import clock_time
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import RequestRow
from tests.helpers.waiting import until

pytestmark = pytest.mark.usefixtures("knowledge_ready")

MODELS = {"roomy": ModelLimits(rpm=1_000, rpd=100_000, tpm=1_000_000, tpd=10_000_000),
          "narrow": ModelLimits(rpm=1_000, rpd=100_000, tpm=1_500, tpd=10_000_000)}
SLOW = FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=20.0)  # every answer takes 20 s


@pytest.fixture
async def slow_endpoint(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalEndpoint]:
    """A local endpoint that counts every window as Groq does and answers each request after 20 s."""
    endpoint = LocalEndpoint(MODELS, faults=SLOW)
    await endpoint.start()
    monkeypatch.setenv("GROQ_BASE_URL", endpoint.url)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    yield endpoint
    await endpoint.stop()


def rows(core: ResourceCore) -> dict[str, RequestRow]:
    return {row.request_id: row for row in core.snapshot().scheduler.requests}


def key_of(table: DataTable[object], request_id: str) -> str:
    """The table's key of the row with this id (rows are keyed by member and id)."""
    return next(str(key.value) for key in table.rows if str(key.value).endswith(f"\x1f{request_id}"))


def cell(table: DataTable[object], request_id: str, column: str) -> str:
    return str(table.get_cell(key_of(table, request_id), column))


async def test_the_tab_says_why_each_request_waits_and_acts_on_one(
        locations: Locations, slow_endpoint: LocalEndpoint) -> None:
    settings = Settings(refresh_interval=0.2, batch_interval=0.0, groq_concurrent=2, models=MODELS,
                        default_model="roomy")
    core = ResourceCore(settings, locations)
    app = MedopsApp(settings, locations, core=core)
    asks: dict[str, asyncio.Task[PromptResult]] = {}

    def ask(name: str, model: str = "roomy", tokens: int = 50) -> None:
        request = PromptRequest("a question", "triage", model=model, request_id=name, max_completion_tokens=tokens)
        asks[name] = asyncio.create_task(core.ask(request))

    async with app.run_test(size=(160, 48)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        ask("big", "narrow", tokens=1_000)  # the narrow model's minute of tokens, in flight for 20 s
        assert await until(pilot, lambda: rows(core).get("big") is not None and rows(core)["big"].state == "sending")
        ask("a1")  # the two slots, in flight for 20 s
        assert await until(pilot, lambda: len([r for r in rows(core).values() if r.state == "sending"]) == 2)
        ask("small", "narrow", tokens=1_000)
        for name in ("w1", "w2", "w3"):
            ask(name)
        await pilot.press("8")
        pane = app.query_one(RequestsPane)
        table = app.query_one("#requests-table", DataTable)
        assert await until(pilot, lambda: table.row_count == 6)

        # Each wait in words, with its time.
        narrow = rows(core)["small"]
        assert narrow.until is not None
        # The table drew an earlier reading than this one: the end it names may differ by a second's rounding.
        assert cell(table, "small", "wait") in {f"tpm full until {clock_time(narrow.until + d)}" for d in (-1, 0, 1)}
        assert re.fullmatch(r"tpm full until \d\d:\d\d:\d\d", cell(table, "small", "wait"))
        assert cell(table, "w1", "wait") == "concurrency cap 2/2"
        assert cell(table, "w3", "wait") == "concurrency cap 2/2; behind 2 normal"
        assert cell(table, "big", "wait") == "at Groq, attempt 1"
        app.action_toggle_intake()
        assert await until(pilot, lambda: cell(table, "w1", "wait") == "intake paused")

        # Cancel the request in flight: c, then c again to confirm.
        table.move_cursor(row=table.get_row_index(key_of(table, "big")))
        await pilot.press("c")
        assert "cancel request big? c again: yes" in str(app.query_one("#requests-status").render())
        assert "big" in rows(core)
        await pilot.press("c")
        with pytest.raises(RequestCancelled, match=r"big was cancelled by console \S+@\S+ while sending"):
            await asks["big"]
        assert core.snapshot().scheduler.in_flight == 1
        assert await until(pilot, lambda: "big" not in [table.get_row_at(i)[0].plain for i in range(table.row_count)])
        change = core.snapshot().limit_changes[0]
        assert (change.key, change.old, change.new) == ("request:big", "sending", "cancelled")
        assert change.by.startswith("console ")

        # Raise the last-come one to critical (+ twice): it is sent next, before the two that came earlier.
        assert await until(pilot, lambda: table.row_count == 5)
        table.move_cursor(row=table.get_row_index(key_of(table, "w3")))
        await pilot.press("plus")
        assert await until(pilot, lambda: cell(table, "w3", "priority") == "high")
        await pilot.press("plus")
        assert rows(core)["w3"].priority == "critical"
        assert await until(pilot, lambda: cell(table, "w3", "priority") == "critical")
        assert [c.new for c in core.snapshot().limit_changes[:2]] == ["critical", "high"]
        app.action_toggle_intake()
        assert await until(pilot, lambda: rows(core)["w3"].state == "sending")
        assert (rows(core)["w1"].state, rows(core)["w2"].state) == ("waiting", "waiting")
        assert pane.applied > 0
    for task in asks.values():
        task.cancel()
    await asyncio.gather(*asks.values(), return_exceptions=True)


async def test_read_only_refuses_cancel_and_priority(locations: Locations, slow_endpoint: LocalEndpoint) -> None:
    settings = Settings(refresh_interval=0.2, batch_interval=0.0, groq_concurrent=1, models=MODELS,
                        default_model="roomy")
    core = ResourceCore(settings, locations)
    app = MedopsApp(settings, locations, core=core, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        task = asyncio.create_task(core.ask(PromptRequest("q", "triage", request_id="kept")))
        await pilot.press("8")
        table = app.query_one("#requests-table", DataTable)
        assert await until(pilot, lambda: table.row_count == 1)
        await pilot.press("c", "c", "plus")
        await pilot.pause(0.3)
        assert rows(core)["kept"].priority == "normal"
        assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_fleet_members_tab_reads_the_fleet_and_says_whose_requests_go_first(locations: Locations) -> None:
    from dataclasses import replace

    from medops.core.fleet.view import FleetView
    from medops.core.snapshot import SchedulerSnapshot, StoreSnapshot
    from tests.helpers.console_data import FrozenCore, busy_snapshot, fixed_fleet

    store = StoreSnapshot("redis://store", "worker-lab-88", "up", None, 0.0, 0.0, 3, 3, 0.0, 0)
    put_off = RequestRow("e19b2c07", "triage", "", "normal", "normal", "high", "llama-3.1-8b-instant", 950, 6.0,
                         None, "waiting", "the fleet has room in 2 s", deferred=True)
    base = busy_snapshot()
    own = replace(base, quota=replace(base.quota, store=store),
                  scheduler=replace(base.scheduler, requests=(put_off,), requests_held=1))
    whole = fixed_fleet()  # console-ward7-4121 alive, worker-lab-88 (this core) stale, worker-lab-90 gone
    ward = whole.snapshots["console-ward7-4121"]
    critical = RequestRow("c1", "triage", "", "critical", "critical", "critical", "llama-3.1-8b-instant", 900, 30.0,
                          None, "waiting", "tpm full")
    reads: list[float] = []

    async def read() -> FleetView:
        reads.append(0.0)
        ahead = replace(ward, scheduler=SchedulerSnapshot(requests=(critical, critical), requests_held=2))
        return replace(whole, snapshots={"console-ward7-4121": ahead})

    app = MedopsApp(Settings(refresh_interval=0.2), locations, core=FrozenCore(own), fleet_reader=read)
    async with app.run_test(size=(160, 48)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.press("8")
        table = app.query_one("#requests-table", DataTable)
        assert await until(pilot, lambda: cell(table, "e19b2c07", "wait").startswith("behind"))
        assert cell(table, "e19b2c07", "wait") == \
            "behind 2 critical at console-ward7-4121 (fleet); the fleet has room in 2 s"
        # A trial read a member's "0 held" as the fleet's: the status says whose requests these are.
        assert "1 held by this core (the others': Fleet tab, Enter on a member)" in \
            str(app.query_one("#requests-status").render())
        assert app._fleet_shown()  # each tick reads the fleet while a member's Requests tab is shown
        asked = len(reads)
        assert await until(pilot, lambda: len(reads) > asked)  # the ticks go on reading it for this tab
