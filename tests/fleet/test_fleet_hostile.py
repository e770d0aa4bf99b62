"""The fleet's store is a trust boundary: hostile values written into a real store stay inert for every reader.

Markup stays text, control characters are shown and never printed, a malformed entry is skipped and counted
(and said), an oversized snapshot is never fetched, and no reader dies."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any, cast

import pytest
import redis

from medops.console.app import MedopsApp
from medops.console.cli import main
from medops.console.panes.fleet import FleetPane
from medops.core.fleet.attached import AttachedFleet
from medops.core.fleet.view import read_fleet
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import FrozenCore
from tests.helpers.hostile_store import MARKUP, OSC52, P, plant, plant_streams
from tests.helpers.redis_server import RedisServer
from tests.helpers.waiting import until


def settings(url: str, **kwargs: Any) -> Settings:
    return Settings(refresh_interval=0.25, store_url=url, store_namespace="test", **kwargs)


async def test_malformed_members_are_skipped_counted_and_names_escaped(redis_server: RedisServer) -> None:
    plant(redis_server.url)
    view = await read_fleet(redis_server.url, "test")
    names = [m.instance for m in view.members]
    assert "good-1" in names and len(names) == 3
    assert all("\x1b" not in m.instance + m.host + m.role + m.version for m in view.members)
    assert view.skipped == {"malformed member entries": 3, "snapshots over 1 MiB": 1}
    assert view.skipped_note() == "3 malformed member entries skipped, 1 snapshots over 1 MiB skipped"
    assert any(name.startswith("?'[@click") for name in names)  # fails the name pattern: quoted, escaped


@pytest.mark.parametrize("argv", [["fleet"], ["fleet", "--json"], ["fleet", "pause", "--all"],
                                  ["fleet", "set", "groq_concurrent", "5", "--all"]])
def test_every_fleet_command_prints_no_escape_and_no_traceback(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str]) -> None:
    plant(redis_server.url)
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    monkeypatch.setenv("MEDOPS_STORE_NAMESPACE", "test")
    if argv[1:2] in (["pause"], ["set"]):
        answer = redis.Redis.from_url(redis_server.url)

        def ack_hostile() -> None:  # every member "answers" with an ack of [] or markup and OSC 52
            for _ in range(40):
                time.sleep(0.05)
                for key in answer.scan_iter(f"{P}ack:*"):
                    answer.hset(key, mapping={"good-1": "[]", MARKUP: json.dumps(
                        {"status": "refused", "detail": OSC52 + MARKUP})})
        import threading
        threading.Thread(target=ack_hostile, daemon=True).start()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1)
    assert "Traceback" not in out + err
    assert "\x1b" not in out + err and "\x07" not in out + err and "\x9b" not in out + err
    if argv == ["fleet"]:
        assert "3 malformed member entries skipped" in out
    if argv == ["fleet", "--json"]:
        fleet = json.loads(out.splitlines()[0])  # the fleet's own record comes first
        assert fleet["record"] == "fleet" and fleet["skipped"]["malformed member entries"] == 3


async def test_the_fleet_tab_shows_hostile_names_as_text_and_a_typed_bracket_does_not_crash(
        locations: Locations, redis_server: RedisServer) -> None:
    plant(redis_server.url)
    url = redis_server.url

    async def read() -> Any:
        return await read_fleet(url, "test")

    core = FrozenCore()
    app = MedopsApp(settings(url), locations, core=core, fleet_reader=read)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("7")
        pane = app.query_one(FleetPane)
        assert await until(pilot, lambda: pane.reads > 0)
        status = str(app.query_one("#fleet-status").render())
        assert "3 malformed member entries skipped" in status
        windows = str(app.query_one("#fleet-windows").render())
        assert "x[/" in windows
        for row in range(3):  # clicking every member's cells does nothing but select
            await pilot.click("#fleet-table", offset=(3, 2 + row))
        assert not core.paused
        await pilot.press("slash", "[", "/", "enter")
        await pilot.pause()
        assert pane.model.filter_text == "[/"
        assert app.is_running


async def test_the_attached_view_survives_a_bad_entry_for_seconds_and_says_its_figures_are_old(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    plant(redis_server.url)
    attached = AttachedFleet(settings(redis_server.url))
    await attached.start()
    try:
        assert attached.snapshot().quota.store.state == "up"  # type: ignore[union-attr]
        alerts = attached.snapshot().alerts
        assert alerts and all("\x1b" not in a.message for a in alerts)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise TypeError("a value no reader expected")

        with monkeypatch.context() as patch:  # undone on leaving, and only this (not the folders' isolation)
            patch.setattr("medops.core.fleet.attached.fleet_snapshot", broken)
            await asyncio.sleep(3.0)
            store = attached.snapshot().quota.store
            assert store is not None and store.state == "down" and "unexpected" in store.last_error
            assert attached._task is not None and not attached._task.done()  # the follow loop lives on
        await asyncio.sleep(1.0)
        assert attached.snapshot().quota.store.state == "up"  # type: ignore[union-attr]
    finally:
        await attached.stop()


async def test_stopping_the_attached_view_ends_its_reads_even_when_the_reader_turns_the_cancel_into_an_error(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py can turn a cancel that lands mid-command into a ConnectionError (seen under load in CI: `stop`
    then waited for ever on a loop that took the error for a store away and read again)."""
    from medops.core.fleet.view import FleetUnavailable

    plant(redis_server.url)
    attached = AttachedFleet(settings(redis_server.url))
    await attached.start()
    reading = asyncio.Event()

    async def read_until_cancelled(self: AttachedFleet) -> Any:
        reading.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise FleetUnavailable("quota store cannot be read (ConnectionError)") from None

    monkeypatch.setattr(AttachedFleet, "_read", read_until_cancelled)
    await asyncio.wait_for(reading.wait(), 30)
    await asyncio.wait_for(attached.stop(), 30)  # ends, where it hung
    assert not attached.running


def test_a_failing_attached_read_turns_live_into_how_old_the_figures_are() -> None:
    from dataclasses import replace

    from medops.console.panes.status import ConsoleState, status_text
    from medops.core.snapshot import StoreSnapshot
    from tests.helpers.console_data import busy_snapshot

    snapshot = busy_snapshot()
    store = StoreSnapshot("redis://127.0.0.1:6379/0", "", "down", time.time() - 12, 0.0, 0.0, 0, 0, 0.0, 0,
                          attached=True)
    down = replace(snapshot, taken_at=time.time() - 12, quota=replace(snapshot.quota, store=store))
    text = status_text(down, ConsoleState(refresh_interval=1.0, display_paused=False, theme="default"))
    assert "live" not in text.split("│")[0] and "figures 12 s old" in text


async def test_stream_entries_of_the_wrong_type_are_skipped_counted_and_the_rest_shown_inert(
        redis_server: RedisServer) -> None:
    from medops.core.fleet.history import read_alerts, read_requests

    plant_streams(redis_server.url)
    requests = await read_requests(redis_server.url, "test")
    assert len(requests.requests) == 2
    assert "8 requests in the fleet's stream could not be read" in requests.note
    shown = requests.requests[0].record  # newest first: the hostile one
    for value in (shown.agent, shown.model, shown.outcome):
        assert "\x1b" not in value and "\x07" not in value and value.startswith("?'")  # fails the name pattern
    assert requests.requests[1].record.agent == "triage"

    alerts = await read_alerts(redis_server.url, "test")
    assert len(alerts.alerts) == 2
    assert "11 alert announcements in the fleet's stream could not be read" in alerts.note
    hostile = alerts.alerts[0]
    assert hostile.instance.startswith("?'[@click") and hostile.alert.name.startswith("?'")
    assert "\x1b" not in hostile.alert.message and "\x07" not in hostile.alert.message
    assert "[@click=app.toggle_intake]ACK-ME[/]" in hostile.alert.message  # text, shown as it is
    assert alerts.alerts[1].alert.message == "CPU 96%"


async def test_a_filter_looks_through_a_bounded_number_of_entries_a_page_and_says_where_it_stopped(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from medops.core.fleet import history
    from medops.core.fleet.publish import stream_fields
    from medops.core.ledger.records import RequestRecord

    monkeypatch.setattr(history, "SCAN_BOUND", 1_000)
    r = redis.Redis.from_url(redis_server.url)
    record = RequestRecord(at_wall=1.0, agent="triage", priority="high", model="m-small", prompt_tokens=5,
                           completion_tokens=2, latency=0.5, queue_wait=0.01, outcome="ok")
    with r.pipeline(transaction=False) as pipe:
        pipe.xadd(f"{P}requests", cast(Any, stream_fields("good-1", dataclasses.replace(record, model="m-big"))))
        for _ in range(1_500):
            pipe.xadd(f"{P}requests", cast(Any, stream_fields("good-1", record)))
        pipe.execute()
    page = await history.read_requests(redis_server.url, "test", model="m-big")
    assert page.requests == () and page.older is not None
    assert "looked through 1,000 entries" in page.note
    rest = await history.read_requests(redis_server.url, "test", before=page.older, model="m-big")
    assert [row.record.model for row in rest.requests] == ["m-big"] and rest.older is None
