"""The Fleet tab (7): fleet members read from a real store, sorted, filtered, opened, acted on; --read-only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from medops.console.app import MedopsApp
from medops.console.cli import main
from medops.console.panes.fleet import NO_STORE, FleetPane, MemberScreen
from medops.console.panes.quota import QuotaPane
from medops.core.fleet.commands import Acknowledgement, Command, issue
from medops.core.fleet.view import FleetView, read_fleet
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot
from tests.console_data import FrozenCore, busy_snapshot
from tests.fleet_helpers import fleet_of, member
from tests.redis_server import RedisServer
from tests.test_console_live import until

LIMITS = ModelLimits(rpm=30, rpd=14_400, tpm=6_000, tpd=500_000)
FAST = Settings(refresh_interval=0.25)


def done_snapshot(done: int) -> CoreSnapshot:
    snapshot = busy_snapshot()
    return replace(snapshot, scheduler=replace(snapshot.scheduler, completed=done))


def rows(app: MedopsApp) -> list[str]:
    table = app.query_one("#fleet-table", DataTable)
    return [str(key.value) for key in table.rows]


def state_of(app: MedopsApp, instance: str) -> str:
    table = app.query_one("#fleet-table", DataTable)
    return str(table.get_cell(instance, "state"))


def notes(app: MedopsApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def store_app(locations: Locations, url: str, **kwargs: Any) -> MedopsApp:
    async def read() -> FleetView:
        return await read_fleet(url, "test")

    async def send(op: str, target: str) -> tuple[Command, list[Acknowledgement]]:
        return await issue(url, "test", op, target, wait=3.0)

    return MedopsApp(FAST, locations, core=FrozenCore(), fleet_reader=read, fleet_issuer=send, **kwargs)


async def click_header(pilot: Pilot[Any], table: DataTable[Any], key: str) -> None:
    """Press a column's heading with the mouse, as an operator sorting by it would."""
    x = 0
    for column_key, column in table.columns.items():
        if column_key.value == key:
            break
        x += column.get_render_width(table)
    await pilot.click(table, offset=(x + 1, 0))


async def test_fleet_tab_shows_sorts_filters_and_opens_real_members(locations: Locations,
                                                                    redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha") as a, member(url, LIMITS, "bravo") as b, \
            member(url, LIMITS, "charlie") as c:
        for quota, done in ((a, 30), (b, 10), (c, 20)):
            fleet = fleet_of(quota)
            fleet.snapshot_source = lambda done=done: done_snapshot(done)  # type: ignore[misc]
            await fleet.publish()
        app = store_app(locations, url)
        async with app.run_test(size=(160, 48)) as pilot:
            pane = app.query_one(FleetPane)
            assert pane.reads == 0  # not read while another tab is shown
            await pilot.press("7")
            assert await until(pilot, lambda: rows(app) == ["alpha", "bravo", "charlie"])
            assert state_of(app, "alpha") == "alive"
            table = app.query_one("#fleet-table", DataTable)
            assert str(table.get_cell("bravo", "done")) == "10"

            await click_header(pilot, table, "done")  # the heading sorts by its column
            assert await until(pilot, lambda: rows(app) == ["bravo", "charlie", "alpha"])
            await click_header(pilot, table, "done")  # again: the other way
            assert await until(pilot, lambda: rows(app) == ["alpha", "charlie", "bravo"])
            pane.sort_key = "failed"
            await pilot.press("s")  # s cycles to the next column, 429s: all equal, so by instance
            assert pane.sort_key == "429s"
            assert rows(app) == ["alpha", "bravo", "charlie"]

            await pilot.press("slash", "c", "h", "a")
            assert await until(pilot, lambda: rows(app) == ["charlie"])
            await pilot.press("escape")  # clears the filter, back to the table
            assert await until(pilot, lambda: rows(app) == ["alpha", "bravo", "charlie"])
            assert isinstance(app.focused, DataTable)
            assert pane.selected_instance() == "charlie"  # the cursor stays on the member it was on

            await pilot.press("up", "enter")  # bravo's own overview, from its published snapshot
            assert await until(pilot, lambda: isinstance(app.screen, MemberScreen))
            assert isinstance(app.screen, MemberScreen) and app.screen.member.instance == "bravo"
            quota_text = str(app.screen.query_one(QuotaPane).render())
            assert "rpm" in quota_text
            await pilot.press("escape")
            assert await until(pilot, lambda: not isinstance(app.screen, MemberScreen))

            for task in fleet_of(b)._tasks:  # bravo stops beating, as a hung or killed process would
                task.cancel()
            assert await until(pilot, lambda: "stale" in state_of(app, "bravo"), within=20)
            assert state_of(app, "bravo").startswith("! ")  # marked in text, not only by colour
            assert state_of(app, "alpha") == "alive"


async def test_p_pauses_the_selected_member_through_the_store(locations: Locations,
                                                              redis_server: RedisServer) -> None:
    url = redis_server.url
    received: list[tuple[str, str]] = []
    async with member(url, LIMITS, "alpha") as a, member(url, LIMITS, "bravo") as b:
        for quota in (a, b):
            fleet = fleet_of(quota)

            async def handle(command: Command, name: str = fleet.instance) -> tuple[bool, str]:
                received.append((name, command.op))
                return True, ""

            fleet.command_handler = handle
            await fleet.take_commands()  # its inbox starts reading here; commands after this reach it
        app = store_app(locations, url)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("7")
            assert await until(pilot, lambda: rows(app) == ["alpha", "bravo"])
            await pilot.press("down", "p")  # bravo
            assert await until(pilot, lambda: any("applied: bravo" in n for n in notes(app)), within=10)
            assert received == [("bravo", "pause")]
            await pilot.press("a", "P")  # every member
            assert await until(pilot, lambda: any("resume intake on every member" in n and "applied: alpha, bravo"
                                                  in n for n in notes(app)), within=10)
            assert sorted(received[1:]) == [("alpha", "resume"), ("bravo", "resume")]


async def test_read_only_refuses_every_action(locations: Locations, redis_server: RedisServer) -> None:
    url = redis_server.url
    received: list[str] = []
    async with member(url, LIMITS, "alpha") as a:
        fleet = fleet_of(a)

        async def handle(command: Command) -> tuple[bool, str]:
            received.append(command.op)
            return True, ""

        fleet.command_handler = handle
        await fleet.take_commands()
        app = store_app(locations, url, read_only=True)
        async with app.run_test(size=(160, 48)) as pilot:
            core = app.core
            assert isinstance(core, FrozenCore)
            assert await until(pilot, lambda: app.core_started)
            await pilot.press("i")
            await pilot.press("l")
            assert not core.paused
            assert app.screen is app.main  # no Limits form
            app.act_on_alert("acknowledge", "cpu")
            assert core.acknowledged == []
            await pilot.press("7")
            assert await until(pilot, lambda: rows(app) == ["alpha"])
            await pilot.press("p")
            app.fleet_act("resume", "*")  # the palette's way
            await pilot.pause(0.5)
            await fleet.take_commands()
            refusals = [n for n in notes(app) if n.startswith("Read-only console (--read-only)")]
            assert len(refusals) == 5
            assert "nothing was sent" in refusals[0]
            assert received == []


async def test_without_a_store_the_tab_says_how_to_set_one(locations: Locations) -> None:
    app = MedopsApp(FAST, locations, core=FrozenCore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await pilot.pause()
        assert NO_STORE in str(app.query_one("#fleet-status").render())
        app.fleet_act("pause", "*")  # the palette's way
        await pilot.pause()
        assert any(NO_STORE in n for n in notes(app))


def test_the_read_only_flag_reaches_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """`medops --read-only` opens a console that refuses actions; without it the console acts."""
    opened: list[bool] = []

    def run(self: MedopsApp, **kwargs: Any) -> None:
        opened.append(self.read_only)

    monkeypatch.setattr(MedopsApp, "run", run)
    assert main(["--read-only"]) == 0
    assert main([]) == 0
    assert opened == [True, False]


async def test_a_member_without_a_snapshot_opens_as_a_summary_of_its_figures(locations: Locations) -> None:
    from tests.test_console_snapshots import fixed_fleet

    async def read() -> FleetView:
        return fixed_fleet()  # only console-ward7-4121 has published a snapshot

    app = MedopsApp(FAST, locations, core=FrozenCore(), fleet_reader=read)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.click("#tabs Tab#--content-tab-fleet")  # by mouse: the table takes the focus
        assert await until(pilot, lambda: rows(app) == ["console-ward7-4121", "worker-lab-88", "worker-lab-90"])
        await pilot.press("down", "enter")
        assert await until(pilot, lambda: isinstance(app.screen, MemberScreen))
        summary = str(app.screen.query_one("#member-summary").render())
        assert "it has published no snapshot" in summary
        assert "normal 9" in summary and "intake paused" in summary
        await pilot.press("escape")
        assert await until(pilot, lambda: app.screen is app.main)
        await pilot.press("up", "enter")
        assert await until(pilot, lambda: isinstance(app.screen, MemberScreen))
        assert app.screen.query_one(QuotaPane)  # its published snapshot, drawn with the Overview's panes
