"""Members that stop: one that ends cleanly is listed `left` with its last figures, a short CLI run leaves no
row, and every view takes a member's state from one function of one reading."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as redis

from medops.console.cli import main
from medops.core.fleet.acl import apply_users, new_users
from medops.core.fleet.view import STALE_AFTER, MemberState, member_state, read_fleet
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import done_snapshot
from tests.helpers.fleet_helpers import fleet_of, member
from tests.helpers.redis_server import RedisServer
from tests.helpers.store_users import NAMES, PASSWORDS, as_user

LIMITS = ModelLimits(rpm=30, rpd=1_000, tpm=10_000, tpd=1_000_000)
NOW = 1_780_000_000_000.0  # store ms


@pytest.fixture
async def acl_store(redis_server: RedisServer) -> AsyncIterator[RedisServer]:
    """The test store with the fleet's users on namespace "test" and the library loaded."""
    await apply_users(redis_server.url, None, "test", new_users(NAMES, PASSWORDS))
    yield redis_server


def test_a_member_that_left_is_left_and_its_beat_age_counts_from_leaving() -> None:
    # medops_leave sets its expiry to the moment it left and drops its beat: 2 s ago, not 2 s + MEMBER_TTL
    assert member_state(NOW - 2_000, None, NOW) == (MemberState.LEFT, 2.0)


def test_a_member_whose_heartbeat_lapsed_is_gone_with_the_age_of_its_last_beat() -> None:
    assert member_state(NOW - 1_000, NOW - 11_000, NOW) == (MemberState.GONE, 11.0)


def test_a_late_member_is_stale_until_its_heartbeat_expires() -> None:
    late = (STALE_AFTER + 1) * 1000
    assert member_state(NOW + 1_000, NOW - late, NOW) == (MemberState.STALE, STALE_AFTER + 1)
    assert member_state(NOW + 9_000, NOW - 1_000, NOW) == (MemberState.ALIVE, 1.0)


def test_only_running_members_are_present() -> None:
    assert [s for s in MemberState if s.present] == [MemberState.ALIVE, MemberState.STALE]


async def test_a_member_that_stops_cleanly_is_listed_left_with_its_last_figures(redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha"):
        async with member(url, LIMITS, "bravo") as bravo:
            fleet_of(bravo).snapshot_source = lambda: done_snapshot(10)
        view = await read_fleet(url, "test")
    rows = {m.instance: m for m in view.members}
    assert rows["bravo"].state == MemberState.LEFT
    assert rows["bravo"].done == 10
    assert "bravo" in view.snapshots


async def test_a_member_stopping_while_a_settle_is_being_sent_sends_it_and_leaves_no_flight(
        redis_server: RedisServer) -> None:
    """Seen as a flight left in the store after a clean `ask` run (fresh-clone CI): stop cancelled the outbox
    task inside the last settle's call, and the flight held the fleet's room until store_flight_bound."""
    from medops.core.groq.quota import Reservation
    from tests.helpers.fleet_helpers import MODEL

    async with member(redis_server.url, LIMITS, "alpha") as alpha:
        store = fleet_of(alpha).store
        sending = asyncio.Event()
        real_call = store.call

        async def slow_call(call: Any) -> Any:  # a settle still on its way when the member stops
            if "settle" in call.function:
                sending.set()
                await asyncio.sleep(0.5)
            return await real_call(call)

        store.call = slow_call  # type: ignore[method-assign]
        reservation = await alpha.admit(100, 0, 0.0)
        assert isinstance(reservation, Reservation)
        alpha.settle(reservation, 80)
        await asyncio.wait_for(sending.wait(), 30)
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert await client.hlen(f"medops:{{test}}:q:{MODEL}:fly") == 0
    finally:
        await client.aclose()


async def test_a_cancel_redis_py_turns_into_a_connection_error_ends_the_call_and_leaves_the_store_up(
        redis_server: RedisServer) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    async with member(redis_server.url, LIMITS, "alpha") as alpha:
        fleet = fleet_of(alpha)
        store = fleet.store
        entered = asyncio.Event()

        async def converted(call: Any) -> Any:  # what redis-py did with a cancel inside a command, under load
            entered.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise RedisConnectionError("Connection closed by server.") from None

        real_fcall = store._fcall
        store._fcall = converted  # type: ignore[method-assign]
        call = asyncio.create_task(store.call(fleet.wire.leave("nobody")))
        await asyncio.wait_for(entered.wait(), 30)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert store.up and store.down_since is None  # the store did not go away: the caller stopped
        store._fcall = real_fcall  # type: ignore[method-assign]


async def test_a_status_run_leaves_no_row(redis_server: RedisServer, tmp_path: Path, built_knowledge: Path) -> None:
    where = Locations(config_dir=tmp_path / "config", data_dir=tmp_path / "data")
    where.ensure()
    shutil.copyfile(built_knowledge, where.knowledge_db)
    url = redis_server.url
    async with member(url, LIMITS, "alpha"):
        for role, listed in (("status", False), ("ask", True)):
            core = ResourceCore(Settings(store_url=url, store_namespace="test"), where, role=role)
            await core.start()
            assert core._fleet is not None
            name = core._fleet.instance
            assert name in {m.instance for m in (await read_fleet(url, "test")).members}
            await core.stop()
            assert (name in {m.instance for m in (await read_fleet(url, "test")).members}) is listed


def test_the_overviews_fleet_line_counts_a_member_that_left_apart_and_not_its_alerts_or_pause() -> None:
    from rich.text import Text

    from medops.console.panes.vitals import fleet_line
    from tests.helpers.console_data import fixed_fleet

    view = fixed_fleet()
    ended = replace(view.members[2], state=MemberState.LEFT, paused=True)
    line = Text.from_markup(fleet_line(replace(view, members=(*view.members[:2], ended)))).plain
    assert line == "fleet 1 alive 1 stale 0 gone 1 left │ rpm 18/30 tpm 9.1k/12k │ 1 paused │ 2 alerts"


async def test_forget_clears_left_and_gone_rows_and_keeps_running_ones(
        acl_store: RedisServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    url = as_user(acl_store.url, "member")
    async with member(url, LIMITS, "alpha"):
        async with member(url, LIMITS, "bravo"):
            pass
        admin = redis.Redis.from_url(acl_store.url)
        # charlie died: its heartbeat expired without a goodbye
        await admin.hset("medops:{test}:members", "charlie", '{"instance":"charlie"}')
        await admin.zadd("medops:{test}:alive", {"charlie": 1_000})
        await admin.zadd("medops:{test}:beat", {"charlie": 1_000})
        await admin.aclose()
        for key, value in (("MEDOPS_STORE_URL", acl_store.url), ("MEDOPS_STORE_NAMESPACE", "test"),
                           ("MEDOPS_STORE_USER", "medops-operator"), ("MEDOPS_STORE_PASSWORD", PASSWORDS["operator"])):
            monkeypatch.setenv(key, value)
        assert await asyncio.to_thread(main, ["fleet", "forget", "alpha"]) == 1
        assert "alpha is still running" in capsys.readouterr().err
        assert await asyncio.to_thread(main, ["fleet", "forget", "--left"]) == 0
        assert capsys.readouterr().out == "forgot 1 member (1 left, 0 gone); 1 alive or stale kept\n"
        assert await asyncio.to_thread(main, ["fleet", "forget"]) == 0
        assert capsys.readouterr().out == "forgot 1 member (0 left, 1 gone); 1 alive or stale kept\n"
        view = await read_fleet(acl_store.url, "test")
        assert [(m.instance, m.state) for m in view.members] == [("alpha", MemberState.ALIVE)]
        assert set(view.snapshots) <= {"alpha"}


async def test_a_reader_cannot_forget(acl_store: RedisServer, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async with member(as_user(acl_store.url, "member"), LIMITS, "bravo"):
        pass
    for key, value in (("MEDOPS_STORE_URL", acl_store.url), ("MEDOPS_STORE_NAMESPACE", "test"),
                       ("MEDOPS_STORE_USER", "medops-reader"), ("MEDOPS_STORE_PASSWORD", PASSWORDS["reader"])):
        monkeypatch.setenv(key, value)
    assert await asyncio.to_thread(main, ["fleet", "forget"]) == 2
    assert "may not forget members: set store_user (MEDOPS_STORE_USER) to an operator or oncall user" \
        in capsys.readouterr().err
    assert [m.instance for m in (await read_fleet(acl_store.url, "test")).members] == ["bravo"]


def _medops_process(tmp_path: Path, store_url: str, knowledge: Path, *args: str) -> subprocess.Popen[str]:
    """A real `medops ...` process on the store's namespace "test", against its in-process local endpoint."""
    data = tmp_path / f"data-{args[0]}"
    data.mkdir(mode=0o700)
    shutil.copyfile(knowledge, data / "knowledge.duckdb")
    env = {k: v for k, v in os.environ.items() if k not in {"GROQ_API_KEY", "GROQ_BASE_URL"}}
    env.update(MEDOPS_STORE_URL=store_url, MEDOPS_STORE_NAMESPACE="test", MEDOPS_DATA_DIR=str(data))
    return subprocess.Popen([sys.executable, "-m", "medops", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


async def _listed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str,
                  role: str) -> dict[str, Any]:
    """The one member of `role` as `medops fleet --json` lists it."""
    monkeypatch.setenv("MEDOPS_STORE_URL", url)
    monkeypatch.setenv("MEDOPS_STORE_NAMESPACE", "test")
    assert await asyncio.to_thread(main, ["fleet", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # JSON Lines, a record a line
    rows = [m for m in records if m["record"] == "member" and m["role"] == role]
    assert len(rows) == 1, rows
    return cast(dict[str, Any], rows[0])


@pytest.mark.slow
async def test_an_ask_run_that_ends_is_listed_left_with_the_figures_it_ended_with(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """#28 second trial: an ask that answered 2 prompts was listed left with done 0, uptime 0 and no case memory
    (its last snapshot was taken after its parts had stopped)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "left one"}\n{"prompt": "left two"}\n')
    run = _medops_process(tmp_path, redis_server.url, built_knowledge, "ask", "--file", str(prompts))
    out, err = await asyncio.to_thread(run.communicate, timeout=120)
    assert run.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["answered"] == 2
    row = await _listed(capsys, monkeypatch, redis_server.url, "ask")
    assert (row["state"], row["done"], row["failed"]) == ("left", 2, 0)
    last = (await read_fleet(redis_server.url, "test")).snapshots[row["instance"]]
    assert last.uptime > 0 and last.scheduler.completed == 2
    assert last.slots.total > 0  # its case memory as it was, not "not running yet"


@pytest.mark.slow
async def test_a_worker_stopped_by_sigterm_is_listed_left_with_what_it_answered(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """#28 second trial: worker w6 (done 62, fail 237) showed 0/0 once it had left."""
    run = _medops_process(tmp_path, redis_server.url, built_knowledge, "worker", "--rate", "5")
    try:
        for _ in range(600):
            members = (await read_fleet(redis_server.url, "test")).members
            if any(m.role == "worker" and m.done >= 3 for m in members):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"the worker never answered 3 prompts: {run.poll()}")
        run.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(run.communicate, timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate(timeout=10)
    said = re.search(r"worker done: sent (\d+), answered (\d+)", out)
    assert said is not None, (out, err)
    row = await _listed(capsys, monkeypatch, redis_server.url, "worker")
    assert row["state"] == "left"
    assert row["done"] == int(said[2]) >= 3
    assert (await read_fleet(redis_server.url, "test")).snapshots[row["instance"]].uptime > 0
