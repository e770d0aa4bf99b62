"""`medops --attach`: a console with no core of its own, over the fleet's store (real redis-server, real members)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable, Label

from medops.console.app import MedopsApp
from medops.console.cli import main
from medops.console.commands.run import attached_app
from medops.console.forms.limits import LimitsScreen
from medops.console.forms.prompt import PromptForm
from medops.console.panes.graphs import GraphsPane
from medops.console.panes.history import MEMBER_AT, REQUESTS
from medops.console.panes.quota import QuotaPane
from medops.console.panes.status import ConsoleState, status_text
from medops.console.panes.vitals import VitalsPane, fleet_line
from medops.core.errors import ConfigError
from medops.core.fleet.attached import AttachedFleet, NoCoreHere
from medops.core.fleet.commands import Acknowledgement, Command
from medops.core.fleet.membership import fleet_namespace
from medops.core.fleet.view import FleetUnavailable, FleetView, read_fleet
from medops.core.groq.requests import PromptRequest
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.live_changes import RestartNeeded
from medops.core.settings.paths import Locations
from medops.core.snapshot import Alert, CoreSnapshot, StoreSnapshot
from tests.helpers.console_data import NOW, FrozenCore, busy_snapshot
from tests.helpers.fleet_helpers import admit, fleet_of, member
from tests.helpers.redis_server import RedisServer, free_port
from tests.helpers.waiting import until

LIMITS = ModelLimits(rpm=30, rpd=14_400, tpm=6_000, tpd=500_000)
MODEL = "llama-3.1-8b-instant"  # the default model of the members' published snapshots
NO_CORE = "attached to the fleet, no core here: "


def settings_for(url: str, **kwargs: Any) -> Settings:
    return Settings(store_url=url, store_namespace="test", refresh_interval=0.25, **kwargs)


def notes(app: MedopsApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def member_snapshot(done: int, alert: str, own: int) -> CoreSnapshot:
    """A member's snapshot: its outcomes, one open alert, and its part `own` of each window it shares."""
    snapshot = busy_snapshot()
    models = tuple(replace(m, windows=tuple(replace(w, own=own) for w in m.windows)) for m in snapshot.quota.models)
    return replace(snapshot, scheduler=replace(snapshot.scheduler, completed=done),
                   quota=replace(snapshot.quota, models=models), alerts=(Alert(alert, "warning", "high", 1.0),))


# -- the attached view over members in this process (each its own store connection and instance) -------------

async def test_the_view_is_the_organisations_quota_with_each_members_part_and_the_members_summed(
        redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha", model=MODEL) as a, member(url, LIMITS, "bravo", model=MODEL) as b:
        for quota, done, alert, own in ((a, 30, "cpu", 2), (b, 10, "loop_lag", 1)):
            for _ in range(own):  # the store counts what the members were admitted, not what they publish
                assert not isinstance(await admit(quota, 10), float)
            snapshot = member_snapshot(done, alert, own + 50)  # a part it claims: never shown as the store's
            fleet_of(quota).snapshot_source = lambda s=snapshot: s  # type: ignore[misc]
            await fleet_of(quota).publish()
        attached = AttachedFleet(settings_for(url))
        await attached.start()
        try:
            snapshot = attached.snapshot()
            assert snapshot.scheduler.completed == 40  # both members' outcomes
            assert snapshot.scheduler.in_flight == 8 and snapshot.scheduler.concurrency == 20
            assert sorted(a.name for a in snapshot.alerts) == ["alpha/cpu", "bravo/loop_lag"]
            store = snapshot.quota.store
            assert store is not None and store.attached and store.members_alive == 2 and store.state == "up"
            default = next(m for m in snapshot.quota.models if m.model == snapshot.quota.default_model)
            rpm = next(w for w in default.windows if w.name == "rpm")
            assert rpm.own is None  # it holds none of the window itself
            assert dict(rpm.parts) == {"alpha": 2, "bravo": 1}  # each member's part, as the store counts it
            assert rpm.used == 3 and rpm.limit == 30  # the organisation's window
            view = await read_fleet(url, "test")
            assert [m.instance for m in view.members] == ["alpha", "bravo"]  # never joins as a member
        finally:
            await attached.stop()


async def test_pause_and_limits_go_to_every_member_and_their_answers_come_back(redis_server: RedisServer) -> None:
    url = redis_server.url
    received: list[tuple[str, str, str, str]] = []
    async with member(url, LIMITS, "alpha") as a, member(url, LIMITS, "bravo") as b:
        for quota in (a, b):
            fleet = fleet_of(quota)

            async def handle(command: Command, name: str = fleet.instance) -> tuple[bool, str]:
                received.append((name, command.op, command.key, command.value))
                return True, ""

            fleet.command_handler = handle
            await fleet.take_commands()
        attached = AttachedFleet(settings_for(url), answer_wait=3.0)
        answers: list[tuple[str, list[Acknowledgement]]] = []
        attached.on_answers = lambda what, acks: answers.append((what, list(acks)))
        await attached.start()
        try:
            attached.pause_intake()
            changed = attached.set_limit("groq_concurrent", 5)
            assert changed.groq_concurrent == 5  # the settings as changed, as the contract says
            with pytest.raises(ConfigError, match="groq_concurrent"):
                attached.set_limit("groq_concurrent", -1)  # refused here: nothing sent
            with pytest.raises(RestartNeeded):
                attached.set_limit("max_cases_in_memory", 10)
            for _ in range(100):
                await fleet_of(a).take_commands()
                await fleet_of(b).take_commands()
                if len(answers) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await attached.stop()
    assert sorted(received) == [("alpha", "pause", "", ""), ("alpha", "set_limit", "groq_concurrent", "5"),
                                ("bravo", "pause", "", ""), ("bravo", "set_limit", "groq_concurrent", "5")]
    assert {what for what, _ in answers} == {"pause intake on every member", "set groq_concurrent = 5 on every member"}
    assert all(sorted(ack.instance for ack in acks) == ["alpha", "bravo"] and
               all(ack.status == "applied" for ack in acks) for _, acks in answers)


async def test_what_needs_a_core_says_so_and_what_to_do(redis_server: RedisServer) -> None:
    attached = AttachedFleet(settings_for(redis_server.url))
    await attached.start()
    try:
        for call, hint in ((attached.ask(PromptRequest("hello", agent="triage")), "medops ask"),
                           (attached.extract("scan.pdf"), "medops extract"),
                           (attached.kb_search("chest pain"), "medops kb search"),
                           (attached.check_intake_path("scan.pdf"), "without --attach"),
                           (attached.request_history(), "MEDOPS_DATA_DIR"),
                           (attached.metric_history(3600.0), "MEDOPS_DATA_DIR")):
            with pytest.raises(NoCoreHere, match=NO_CORE) as refused:
                await call
            assert hint in str(refused.value)
        with pytest.raises(NoCoreHere, match=NO_CORE):
            attached.acknowledge_alert("cpu")
        assert attached.intake_folders() == ()
    finally:
        await attached.stop()


async def test_a_store_that_goes_away_is_said_and_the_last_reading_kept(redis_server: RedisServer) -> None:
    async with member(redis_server.url, LIMITS, "alpha") as a:
        fleet_of(a).snapshot_source = busy_snapshot
        await fleet_of(a).publish()
        attached = AttachedFleet(settings_for(redis_server.url))
        await attached.start()
        try:
            redis_server.freeze()
            try:
                for _ in range(100):
                    if attached.snapshot().quota.store.state == "down":  # type: ignore[union-attr]
                        break
                    await asyncio.sleep(0.1)
                snapshot = attached.snapshot()
                assert snapshot.quota.store is not None and snapshot.quota.store.state == "down"
                assert "cannot be read" in snapshot.quota.store.last_error
                assert snapshot.scheduler.completed == busy_snapshot().scheduler.completed  # the last reading
                with pytest.raises(FleetUnavailable):
                    await attached.fleet_view()
            finally:
                redis_server.thaw()
        finally:
            await attached.stop()


# -- starting: through the `medops` entry -------------------------------------------------------------------

def test_attach_without_a_store_exits_2_saying_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--attach"]) == 2
    err = capsys.readouterr().err
    assert "set store_url (MEDOPS_STORE_URL" in err and "without --attach" in err


def test_attach_to_an_unreachable_store_exits_2_with_the_url_redacted(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("MEDOPS_STORE_URL", f"redis://ops:s3cret-pass@127.0.0.1:{port}/0")
    assert main(["--attach"]) == 2
    err = capsys.readouterr().err
    assert f"cannot attach to the fleet: quota store redis://***@127.0.0.1:{port}/0 cannot be read" in err
    assert "s3cret-pass" not in err


def test_attach_opens_the_console_over_an_attached_fleet(monkeypatch: pytest.MonkeyPatch,
                                                        redis_server: RedisServer) -> None:
    opened: list[bool] = []

    def run(self: MedopsApp, **kwargs: Any) -> None:
        opened.append(self.core is not None and self.core.attached)

    monkeypatch.setattr(MedopsApp, "run", run)
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    assert main(["--attach"]) == 0
    assert main([]) == 0  # without the flag the console builds its own core (after the first frame)
    assert opened == [True, False]


# -- the console attached to real `medops worker` processes -------------------------------------------------

def _worker(tmp_path: Path, n: int, store_url: str, knowledge: Path) -> subprocess.Popen[str]:
    """A `medops worker` member; slow enough (0.6 a second together, rpm 30) that nothing queues for long, so it
    stops at once when asked."""
    data = tmp_path / f"worker-{n}"
    data.mkdir(mode=0o700)
    shutil.copyfile(knowledge, data / "knowledge.duckdb")
    env = {k: v for k, v in os.environ.items() if k != "GROQ_API_KEY"}
    env.update(MEDOPS_STORE_URL=store_url, MEDOPS_DATA_DIR=str(data))
    return subprocess.Popen([sys.executable, "-m", "medops", "worker", "--rate", "0.3", "--seed", str(n)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
async def test_attached_console_over_two_real_workers(tmp_path: Path, redis_server: RedisServer,
                                                      built_knowledge: Path, locations: Locations) -> None:
    workers = [_worker(tmp_path, n, redis_server.url, built_knowledge) for n in range(2)]
    try:
        settings = Settings(store_url=redis_server.url, refresh_interval=0.25)
        namespace = fleet_namespace(settings, os.environ)  # the workers' own: no key, each its local endpoint
        for _ in range(600):
            view = await read_fleet(redis_server.url, namespace)
            if sum(m.state == "alive" for m in view.members) == 2 and all(m.own.get("rpm") for m in view.members):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"the workers did not join and send: {[w.poll() for w in workers]}")
        instances = sorted(m.instance for m in view.members)
        app = attached_app(AttachedFleet(settings), locations)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await until(pilot, lambda: app.core_started and app.latest is not None, within=20)
            vitals = app.query_one(VitalsPane)
            assert await until(pilot, lambda: vitals.fleet.startswith("fleet [b]2[/] alive"), within=10)
            assert "rpm [b]" in vitals.fleet and "0 paused" in vitals.fleet
            quota = app.query_one(QuotaPane)
            assert "fleet quota of 2 members · attached: holds none" in str(quota.render())
            assert await until(pilot, lambda: "parts:" in str(quota.render()) and
                               all(name in str(quota.render()) for name in instances))  # each member's part
            status = str(app.query_one("#status").render())
            assert f"attached to the fleet (2 members) at {redis_server.url}" in status.replace("\n", " ")
            assert "Groq stand-in" in status  # which Groq the members use, from their snapshots

            await pilot.press("3")  # the prompt form says it needs a core before anything is typed
            form = app.query_one(PromptForm)
            error = form.query_one("#prompt-error", Label)
            assert "need a core of their own" in str(error.render())
            await pilot.press("h", "i", "enter")  # typed anyway: refused, and kept in the box
            assert form.box_text() == "hi"
            assert "medops ask" in str(error.render())

            await pilot.press("escape", "1", "i")  # pause every member's intake, from the console
            assert await until(pilot, lambda: any("pause intake on every member" in n and
                                                  f"applied: {', '.join(instances)}" in n for n in notes(app)),
                               within=15)
            assert await until(pilot, lambda: "[reverse]2 paused[/]" in vitals.fleet and app.latest is not None
                               and app.latest.paused, within=10)
            members = (await read_fleet(redis_server.url, namespace)).members
            assert sorted(m.instance for m in members) == instances  # the console is not one of them
            assert all(m.paused for m in members)
            await pilot.press("i")
            assert await until(pilot, lambda: "0 paused" in vitals.fleet, within=15)

            await pilot.press("2")  # Graphs: nothing sampled here, and it says where the members' figures are
            graphs = app.query_one(GraphsPane)
            assert await until(pilot, lambda: "no core here to sample" in graphs._summary and "Fleet tab" in
                               graphs._summary)

            await pilot.press("6")  # History: the workers' requests from the fleet's stream, not a local ledger
            requests = app.query_one("#history-requests", DataTable)
            assert await until(pilot, lambda: requests.row_count > 0, within=15)
            names = {str(requests.get_row_at(n)[MEMBER_AT[REQUESTS]]) for n in range(requests.row_count)}
            assert names <= {m.instance for m in members} and names  # the instance name, as everywhere else

            await pilot.press("l")  # limits: attached, every change goes to the whole fleet; no scope to choose
            assert await until(pilot, lambda: isinstance(app.screen, LimitsScreen))
            assert not app.screen.query("#scope-fleet")
            assert "goes to every member" in str(app.screen.query_one("#limit-result", Label).render())
            await pilot.press("escape")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        for worker in workers:
            worker.communicate(timeout=150)


# -- the Overview's fleet line and the status line ----------------------------------------------------------

def test_the_fleet_line_counts_members_by_state_the_organisations_use_paused_and_alerts() -> None:
    from tests.helpers.console_data import fixed_fleet

    line = Text.from_markup(fleet_line(fixed_fleet())).plain
    # one alive, one stale (paused), one gone; the gone member's alert is not counted
    assert line == "fleet 1 alive 1 stale 1 gone │ rpm 18/30 tpm 9.1k/12k │ 1 paused │ 2 alerts"
    assert len(line) <= 78


async def test_with_a_store_the_overview_opens_with_the_fleet_line_and_the_vitals_still_fit_80x24(
        locations: Locations) -> None:
    from tests.helpers.console_data import fixed_fleet

    async def read() -> FleetView:
        return fixed_fleet()

    app = MedopsApp(Settings(refresh_interval=0.25), locations, core=FrozenCore(), fleet_reader=read)
    async with app.run_test(size=(80, 24)) as pilot:
        vitals = app.query_one(VitalsPane)
        assert await until(pilot, lambda: bool(vitals.fleet) and app.snapshots_applied > 0)
        await pilot.pause()
        assert str(vitals.render()).startswith("fleet 1 alive")
        assert vitals.region.bottom <= 24 - 1  # the whole pane above the footer: nothing pushed off


def test_the_status_line_says_attached_where_and_when_the_store_stops_answering() -> None:
    store = StoreSnapshot(url="redis://***@store:6379/0", instance="", state="up", down_since=None, rtt_p50_ms=0.5,
                          rtt_p99_ms=1.0, members_alive=3, share=0, clock_skew=0.0, pending=0, attached=True)
    snapshot = replace(busy_snapshot(), quota=replace(busy_snapshot().quota, store=store))
    state = ConsoleState(1.0, False, "medops-dark")
    text = Content.from_markup(status_text(snapshot, state)).plain
    assert "attached to the fleet (3 members) at redis://***@store:6379/0" in text and "ledger" not in text
    down = replace(snapshot, quota=replace(snapshot.quota, store=replace(store, state="down", down_since=NOW)))
    assert "FLEET STORE UNREADABLE since" in Content.from_markup(status_text(down, state)).plain


async def test_a_fleet_with_no_member_yet_is_watched_and_says_so(redis_server: RedisServer,
                                                                  locations: Locations) -> None:
    app = attached_app(AttachedFleet(settings_for(redis_server.url)), locations)
    async with app.run_test(size=(80, 24)) as pilot:
        vitals = app.query_one(VitalsPane)
        assert await until(pilot, lambda: app.snapshots_applied > 0 and bool(vitals.fleet))
        await pilot.pause()
        assert "quota: no member has published yet" in str(vitals.render())
        assert vitals.fleet.startswith("fleet [b]0[/] alive")
        assert "attached to the fleet (0 members)" in str(app.query_one("#status").render())
        assert "Groq not known yet" in str(app.query_one("#status").render())
