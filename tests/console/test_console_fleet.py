"""The Fleet tab (7): fleet members read from a real store, sorted, filtered, opened, acted on; --read-only."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, RadioButton, RadioSet

from medops.console.app import MedopsApp
from medops.console.cli import main
from medops.console.forms.limits import LimitsScreen
from medops.console.panes.fleet import NO_STORE, FleetPane
from medops.console.panes.history import MEMBER_AT, REQUESTS
from medops.console.panes.member_screen import MemberScreen
from medops.console.panes.quota import QuotaPane
from medops.console.panes.slots import SlotsPane
from medops.core.fleet.commands import Acknowledgement, Command, issue
from medops.core.fleet.view import FleetView, read_fleet
from medops.core.groq.requests import PromptRequest
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import FrozenCore, done_snapshot
from tests.helpers.fleet_helpers import fleet_cores, fleet_of, member
from tests.helpers.redis_server import RedisServer
from tests.helpers.waiting import until

LIMITS = ModelLimits(rpm=30, rpd=14_400, tpm=6_000, tpd=500_000)
FAST = Settings(refresh_interval=0.25)


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
            await pilot.press("2")
            reads = pane.reads
            await pilot.pause(0.75)  # three ticks
            assert pane.reads == reads  # not read while a tab without the fleet is shown
            await pilot.press("7")
            assert await until(pilot, lambda: rows(app) == ["alpha", "bravo", "charlie"])
            assert state_of(app, "alpha") == "alive"
            table = app.query_one("#fleet-table", DataTable)
            assert str(table.get_cell("bravo", "done")) == "10"

            await click_header(pilot, table, "done")  # the heading sorts by its column
            assert await until(pilot, lambda: rows(app) == ["bravo", "charlie", "alpha"])
            await click_header(pilot, table, "done")  # again: the other way
            assert await until(pilot, lambda: rows(app) == ["alpha", "charlie", "bravo"])
            pane.model.sort_key, pane.model.reverse = "done", False
            await pilot.press("s")  # s: the same column, the other way
            assert (pane.model.sort_key, pane.model.reverse) == ("done", True)
            assert rows(app) == ["alpha", "charlie", "bravo"]
            pane.model.sort_key = "failed"
            await pilot.press("s")  # from descending, s moves to the next column, 429s: all equal, so by instance
            assert (pane.model.sort_key, pane.model.reverse) == ("429s", False)
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
            await pilot.press("a", "P", "n")  # every member? no
            assert await until(pilot, lambda: any("Not sent: resume intake on every member" in n for n in notes(app)))
            await pilot.pause(0.3)
            assert received == [("bravo", "pause")]
            await pilot.press("a", "P", "y")  # every member, confirmed
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
    from tests.helpers.console_data import fixed_fleet

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


async def test_the_member_view_lists_the_requests_its_snapshot_published(locations: Locations) -> None:
    from medops.core.snapshot import RequestRow
    from tests.helpers.console_data import fixed_fleet

    view = fixed_fleet()
    ward = view.snapshots["console-ward7-4121"]
    waiting = RequestRow("c81d0e55", "diagnosis", "", "normal", "critical", "critical", "llama-3.1-8b-instant",
                         1_124, 102.0, None, "waiting", "tpm full until 14:02:11")
    published = replace(ward, scheduler=replace(ward.scheduler, requests=(waiting,), requests_held=3))

    async def read() -> FleetView:
        return replace(view, snapshots={"console-ward7-4121": published})

    app = MedopsApp(FAST, locations, core=FrozenCore(), fleet_reader=read)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("7")
        assert await until(pilot, lambda: rows(app)[:1] == ["console-ward7-4121"])
        await pilot.press("enter")
        assert await until(pilot, lambda: isinstance(app.screen, MemberScreen))
        listed = str(app.screen.query_one("#member-requests").render())
        assert "Requests held: 3" in listed
        assert "c81d0e55" in listed and "diagnosis" in listed and "normal^critical" in listed
        assert "tpm full until 14:02:11" in listed
        assert "2 more held" in listed


async def test_the_overviews_fleet_line_is_drawn_from_the_reading_the_fleet_tab_shows(locations: Locations) -> None:
    # Seen in a trial: back on the Overview, its fleet line was one reading older than the Fleet tab's rows.
    from medops.console.panes.vitals import VitalsPane, fleet_line
    from tests.helpers.console_data import fixed_fleet

    whole = fixed_fleet()
    readings: list[FleetView] = []

    async def read() -> FleetView:  # each reading finds one member more, up to the three
        readings.append(replace(whole, members=whole.members[:len(readings) + 1]))
        return readings[-1]

    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore(), fleet_reader=read)
    async with app.run_test(size=(160, 48)) as pilot:
        vitals, pane = app.query_one(VitalsPane), app.query_one(FleetPane)
        assert await until(pilot, lambda: bool(vitals.fleet))
        await pilot.press("7")
        assert await until(pilot, lambda: pane.view is not None and len(pane.view.members) >= 2)
        await pilot.press("1")
        assert await until(pilot, lambda: pane.view is not None and vitals.fleet == fleet_line(pane.view))
        assert pane.view is readings[-1]  # the newest reading, on both


def store_settings(url: str) -> Settings:
    """A console with the fleet's store set (namespace "test", the helpers' members'): no core of its own here."""
    return Settings(refresh_interval=0.25, store_url=url, store_namespace="test")


def member_title(app: MedopsApp) -> str:
    return str(app.screen.query_one("#member-title").render())


async def test_a_member_that_left_is_listed_as_left_not_hidden(locations: Locations,
                                                               redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha"):
        app = store_app(locations, url)
        async with app.run_test(size=(160, 48)) as pilot:
            async with member(url, LIMITS, "bravo"):
                await pilot.press("7")
                assert await until(pilot, lambda: rows(app) == ["alpha", "bravo"] and
                                   state_of(app, "bravo") == "alive")
            # bravo has stopped and left the fleet (medops_leave): listed still, a clean end is no warning
            assert await until(pilot, lambda: state_of(app, "bravo") == "left")
            assert rows(app) == ["alpha", "bravo"]
            assert state_of(app, "alpha") == "alive"
            status = str(app.query_one("#fleet-status").render())
            assert "1 alive, 0 stale, 0 gone, 1 left" in status


async def test_at_80_columns_right_scrolls_to_the_members_figures_and_a_refresh_keeps_them(
        locations: Locations, redis_server: RedisServer) -> None:
    # Seen in a trial at 80x24: done, fail, 429, rpm, lag, cpu and alerts lay past the edge, and → did
    # nothing: each refresh rebuilt the rows and scrolled back to the first column.
    async with member(redis_server.url, LIMITS, "alpha"):
        app = store_app(locations, redis_server.url)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("7")
            assert await until(pilot, lambda: rows(app) == ["alpha"])
            table = app.query_one("#fleet-table", DataTable)
            assert table.max_scroll_x > 0  # the figures lie past the edge
            await pilot.press(*["right"] * 10)
            pane = app.query_one(FleetPane)
            reads = pane.reads
            assert await until(pilot, lambda: pane.reads >= reads + 2)  # two refreshes since
            await pilot.pause()
            assert table.scroll_x == 10


async def test_a_members_uptime_stops_when_it_leaves(redis_server: RedisServer) -> None:
    # Seen in a trial: an `ask` run that had ended minutes before still showed its uptime growing.
    url = redis_server.url
    async with member(url, LIMITS, "alpha"):
        async with member(url, LIMITS, "bravo"):
            pass
        view = await read_fleet(url, "test")
    rows_by_name = {m.instance: m for m in view.members}
    alpha, bravo = rows_by_name["alpha"], rows_by_name["bravo"]
    assert (alpha.state, bravo.state) == ("alive", "left")
    assert bravo.uptime(view.read_at + 3_600) == bravo.uptime(view.read_at)
    assert alpha.uptime(view.read_at + 3_600) == alpha.uptime(view.read_at) + 3_600


async def test_the_member_view_follows_the_members_published_figures(locations: Locations,
                                                                     redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha"):
        app = store_app(locations, url)
        async with app.run_test(size=(160, 48)) as pilot:
            async with member(url, LIMITS, "bravo") as b:
                fleet = fleet_of(b)
                fleet.snapshot_source = lambda: done_snapshot(10)
                await fleet.publish()
                await pilot.press("7")
                assert await until(pilot, lambda: rows(app) == ["alpha", "bravo"])
                await pilot.press("down", "enter")
                assert await until(pilot, lambda: isinstance(app.screen, MemberScreen))
                screen = app.screen
                assert isinstance(screen, MemberScreen) and screen.member is not None
                assert screen.member.instance == "bravo"
                assert "done 10 " in str(screen.query_one(QuotaPane).render())
                fleet.snapshot_source = lambda: done_snapshot(77)  # its heartbeat publishes the new figure
                assert await until(pilot, lambda: "done 77 " in str(screen.query_one(QuotaPane).render()))
                assert "its snapshot" in member_title(app) and " old" in member_title(app)
                assert "!" not in member_title(app)
            # bravo left: the view stays on its last picture and says the member left, and when
            assert await until(pilot, lambda: "! left at " in member_title(app))
            assert "(it stopped cleanly)" in member_title(app)
            assert "below: its figures as it left" in member_title(app)
            assert "done 77 " in str(screen.query_one(QuotaPane).render())
            reads = screen.reads
            await pilot.press("escape")
            assert await until(pilot, lambda: app.screen is app.main)
            await pilot.pause(1.0)
            assert screen.reads == reads  # a closed view reads no more


async def test_the_member_view_of_a_core_that_left_shows_when_and_its_figures_as_it_left(
        locations: Locations, redis_server: RedisServer, built_knowledge: Path, tmp_path: Path) -> None:
    """#28 second trial: the view of an ask run that had left showed done 0 and "case memory is not running
    yet" (its last snapshot was taken after its parts had stopped), and said nothing of when it left."""
    async with fleet_cores(redis_server.url, tmp_path, built_knowledge, ("ward",)) as (core,):
        for n in range(2):
            await core.ask(PromptRequest(f"synthetic note {n}", "triage"))
    app = store_app(locations, redis_server.url)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("7")
        assert await until(pilot, lambda: len(rows(app)) == 1 and state_of(app, rows(app)[0]) == "left")
        await pilot.press("enter")
        assert await until(pilot, lambda: isinstance(app.screen, MemberScreen))
        screen = app.screen
        assert re.search(r"! left at \d\d:\d\d:\d\d, \d+s ago \(it stopped cleanly\)", member_title(app))
        assert "done 2 " in str(screen.query_one(QuotaPane).render())
        slots = str(screen.query_one(SlotsPane).render())
        assert "not running yet" not in slots and "slots 0/" in slots


async def test_the_history_tab_reads_the_fleets_stream_with_an_instance_column(locations: Locations,
                                                                               redis_server: RedisServer) -> None:
    from medops.console.panes.history import HistoryPane
    from medops.core.snapshot import Alert
    from tests.helpers.fleet_helpers import publish, request

    url = redis_server.url
    async with member(url, LIMITS, "alpha") as a, member(url, LIMITS, "bravo") as b:
        ward = fleet_of(a)
        ward.description = '{"instance":"alpha","host":"ward7.example.org","pid":4121,"role":"worker"}'
        await ward.heartbeat()  # the store now describes alpha with its host and pid
        for start in range(0, 130, 10):  # 130 requests, the members taking turns: one page and a bit
            batch = [request(n, agent="diagnosis" if n % 10 == 0 else "triage") for n in range(start, start + 10)]
            await publish(fleet_of(a) if start % 20 == 0 else fleet_of(b), batch)
        alert = Alert("cpu", "warning", "CPU 96% for 30 s", opened_at=1_000.0, value=96.0, rule="cpu",
                      updated_at=1_000.0)
        await publish(fleet_of(b), [], (alert,))
        app = MedopsApp(store_settings(url), locations, core=FrozenCore())
        async with app.run_test(size=(160, 48)) as pilot:
            pane = app.query_one(HistoryPane)
            await pilot.press("6")
            requests = app.query_one("#history-requests", DataTable)
            at = MEMBER_AT[REQUESTS]  # the instance column sits after the request's figures
            assert [str(c.label) for c in requests.ordered_columns][at:at + 2] == ["instance", "agent"]
            assert await until(pilot, lambda: requests.row_count == 100)
            first = [str(cell) for cell in requests.get_row_at(0)]
            assert first[at] == "alpha" and first[-1] == "req-129"  # its instance name, as in the Fleet tab
            tenth = [str(cell) for cell in requests.get_row_at(10)]
            assert tenth[at] == "bravo" and tenth[-1] == "req-119"
            alerts = app.query_one("#history-alerts", DataTable)
            assert await until(pilot, lambda: alerts.row_count == 1)
            assert [str(cell) for cell in alerts.get_row_at(0)][1:5] == ["bravo", "opened", "warning", "cpu"]
            assert "all members" in str(app.query_one("#history-title").render())

            await pilot.press("o")  # the older rows, from just before the oldest shown
            assert await until(pilot, lambda: requests.row_count == 130)
            ids = [str(requests.get_row_at(n)[-1]) for n in range(130)]
            assert ids == [f"req-{n}" for n in range(129, -1, -1)]
            assert "all 130 shown" in str(app.query_one("#history-title").render())

            await pilot.press("a")  # the first agent: diagnosis
            assert await until(pilot, lambda: pane.agent == "diagnosis" and requests.row_count == 13)
            assert {str(requests.get_row_at(n)[at + 1]) for n in range(13)} == {"diagnosis"}
            await pilot.press("a", "a", "a", "a", "a")  # past the last agent: all again
            assert await until(pilot, lambda: pane.agent is None and requests.row_count == 100)

            await publish(fleet_of(b), [request(130)])  # a new request: the tab follows the newest rows
            assert await until(pilot, lambda: str(requests.get_row_at(0)[-1]) == "req-130")
            assert str(requests.get_row_at(0)[at]) == "bravo"

            redis_server.stop()  # the store away: said in the tab, the rows read stay
            note = app.query_one("#history-note")
            assert await until(pilot, lambda: "fleet's history could not be read" in str(note.render()))
            assert requests.row_count == 100


async def test_the_limits_form_changes_a_limit_on_the_whole_fleet(locations: Locations, redis_server: RedisServer,
                                                                   tmp_path: Path, built_knowledge: Path) -> None:
    url = redis_server.url
    async with fleet_cores(url, tmp_path, built_knowledge, ("ward", "lab")) as cores:
        names = sorted(core._fleet.instance for core in cores if core._fleet is not None)
        console = FrozenCore()
        app = MedopsApp(store_settings(url), locations, core=console)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await until(pilot, lambda: app.core_started)
            await pilot.press("l")
            assert isinstance(app.screen, LimitsScreen)
            form = app.screen
            assert form.query_one("#scope-console", RadioButton).value  # this console unless chosen
            await pilot.press("shift+tab")  # from the key field back to the choice
            assert isinstance(app.focused, RadioSet)
            await pilot.press("right", "enter", "tab")  # the whole fleet, then back to the key field
            assert form.whole_fleet
            assert "goes to every member of the fleet" in str(form.query_one("#limit-result", Label).render())
            await pilot.press(*"groq_concurrent", "enter", "3", "enter")
            assert await until(pilot, lambda: form.fleet_answers == 1, within=15)
            result = str(form.query_one("#limit-result", Label).render())
            assert result.startswith("set groq_concurrent = 3 on every member:")
            assert f"applied: {', '.join(names)}" in result
            assert [core.settings.groq_concurrent for core in cores] == [3, 3]
            assert console.settings.groq_concurrent != 3  # this console's own core was not asked
            changes = [await core.limit_change_history() for core in cores]
            assert all(h.changes[0].key == "groq_concurrent" and h.changes[0].by.endswith("(fleet)")
                       for h in changes)  # each member's ledger says who and where

            key, value = form.query_one("#limit-key", Input), form.query_one("#limit-value", Input)
            key.value, value.value = "case_memory_mb", "64"  # restart-only: every member refuses, saying why
            value.focus()
            await pilot.press("enter")
            assert await until(pilot, lambda: form.fleet_answers == 2, within=15)
            result = str(form.query_one("#limit-result", Label).render())
            assert "refused: " in result and "restart" in result and "applied" not in result
            assert all(name in result for name in names)
