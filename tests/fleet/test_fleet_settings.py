"""Fleet-wide settings live in the store: a member that joins after `medops fleet set KEY VALUE --all` runs with
the value too and says so; `medops fleet settings` lists them and who runs otherwise; hostile entries are
refused with a line and nothing crashes. On a real redis-server, with real cores."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as redis

from medops.console.cli import main
from medops.core.fleet.shared_settings import SHARED, read_fleet_settings
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.live_changes import LIVE
from medops.core.settings.paths import Locations
from tests.helpers.redis_server import RedisServer

P = "medops:{test}:settings"
MARKUP = "[@click=app.toggle_intake]ACK-ME[/]"
OSC52 = "\x1b]52;c;SGVsbG8=\x07"


@asynccontextmanager
async def started(url: str, tmp_path: Path, knowledge: Path, name: str, **own: object) -> AsyncIterator[ResourceCore]:
    """One real core joined to the store as a worker, with its own data folder and settings."""
    where = Locations(config_dir=tmp_path / f"{name}-config", data_dir=tmp_path / name)
    where.ensure()
    shutil.copyfile(knowledge, where.knowledge_db)
    core = ResourceCore(Settings(store_url=url, store_namespace="test", **own), where, role="worker")  # type: ignore[arg-type]
    await core.start()
    try:
        yield core
    finally:
        await core.stop()


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


async def in_thread(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The CLI runs its own event loop: off this test's, whose cores must keep beating meanwhile."""
    code = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    monkeypatch.setenv("MEDOPS_STORE_NAMESPACE", "test")
    return redis_server.url


def test_the_shared_keys_are_live_keys() -> None:
    assert SHARED.issubset(LIVE)


async def test_a_member_that_joins_later_applies_the_fleet_wide_value_and_says_so(
        store_env: str, tmp_path: Path, built_knowledge: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    url = store_env
    async with started(url, tmp_path, built_knowledge, "ward", groq_concurrent=4) as ward:
        code, out, _ = await in_thread(["fleet", "set", "groq_concurrent", "5", "--all"], capsys)
        assert code == 0, out
        assert "kept in the store as a fleet-wide setting" in out
        assert ward.settings.groq_concurrent == 5  # alive: the command, at once
        code, out, _ = await in_thread(["fleet", "set", "alert_cpu_percent", "70", "--all"], capsys)
        assert code == 0 and ward.settings.alert_cpu_percent == 70.0  # ward ran medops's default: it takes it

        caplog.set_level(logging.WARNING, logger="medops.core")
        # lab starts after both: its own groq_concurrent (2) gives way, its own alert threshold (85) is kept.
        async with started(url, tmp_path, built_knowledge, "lab", groq_concurrent=2, alert_cpu_percent=85.0) as lab:
            assert lab.settings.groq_concurrent == 5
            assert lab.settings.alert_cpu_percent == 85.0
            said = [r.getMessage() for r in caplog.records]
            assert any(m.startswith("applied fleet settings from the store: groq_concurrent=5 (was 2; set by "
                                    "store user default, ") for m in said), said
            assert any("kept this member's own alert_cpu_percent = 85.0 over the fleet-wide 70" in m for m in said)
            history = await lab.limit_change_history()
            assert history.changes[0].key == "groq_concurrent"
            assert history.changes[0].by.startswith("fleet settings in the store (set by store user default, ")
            assert lab._fleet is not None and ward._fleet is not None
            lab_id, ward_id = lab._fleet.instance, ward._fleet.instance

            # One member only: not kept fleet-wide, and listed as that member's override.
            code, out, _ = await in_thread(["fleet", "--instance", ward_id, "set", "groq_concurrent", "3"], capsys)
            assert code == 0 and "kept in the store" not in out
            assert ward.settings.groq_concurrent == 3
            stored = await read_fleet_settings(url, "test")
            assert [(s.key, s.value) for s in stored.settings] == [("alert_cpu_percent", "70"),
                                                                    ("groq_concurrent", "5")]
            out = ""
            for _ in range(50):  # ward publishes its values with its snapshot, each beat
                code, out, _ = await in_thread(["fleet", "settings"], capsys)
                if f"{ward_id} overrides groq_concurrent = 3" in out:
                    break
                await asyncio.sleep(0.2)
            assert code == 0
            assert "groq_concurrent = 5  set by store user default, " in out
            assert f"{ward_id} overrides groq_concurrent = 3 (fleet-wide 5)" in out
            assert f"{lab_id} overrides alert_cpu_percent = 85.0 (fleet-wide 70)" in out
            assert f"{lab_id} overrides groq_concurrent" not in out
            code, out, _ = await in_thread(["fleet", "settings", "--json"], capsys)
            data = json.loads(out)
            assert {(s["key"], s["value"], s["shared"]) for s in data["settings"]} == {
                ("groq_concurrent", "5", True), ("alert_cpu_percent", "70", False)}
            assert {"instance": ward_id, "key": "groq_concurrent", "value": "3", "fleet_value": "5"} \
                in data["overrides"]
            assert data["refused"] == [] and data["unpublished"] == []

        code, out, _ = await in_thread(["fleet", "unset", "groq_concurrent"], capsys)
        assert code == 0 and "members running keep the value they run until they restart" in out
        assert ward.settings.groq_concurrent == 3
        assert [s.key for s in (await read_fleet_settings(url, "test")).settings] == ["alert_cpu_percent"]
        code, _, err = await in_thread(["fleet", "unset", "groq_concurrent"], capsys)
        assert code == 1 and "groq_concurrent has no fleet-wide value" in err


async def test_a_restart_only_or_bad_value_is_not_kept_fleet_wide(store_env: str, tmp_path: Path,
                                                                  built_knowledge: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    async with started(store_env, tmp_path, built_knowledge, "ward"):
        # Refused before sending, by the rule the member applies (it would refuse it too).
        code, out, err = await in_thread(["fleet", "set", "case_memory_mb", "64", "--all"], capsys)
        assert code == 2 and out == "" and "case_memory_mb cannot change while medops runs" in err
        code, out, err = await in_thread(["fleet", "set", "groq_concurrent", "0", "--all"], capsys)
        assert code == 2 and out == "" and "1 to 1000" in err
    assert (await read_fleet_settings(store_env, "test")).settings == ()


async def plant(url: str) -> None:
    """The settings hash as an attacker with the store's password leaves it: one good entry, hostile ones."""
    r = redis.Redis.from_url(url)
    good = {"value": "70", "operator": OSC52 + MARKUP, "store_user": MARKUP, "at": 1.0}
    await r.hset(P, mapping={
        "alert_cpu_percent": json.dumps(good),
        "groq_concurrent": json.dumps({**good, "value": "5", "pad": "x" * 2_000}),  # over the cap: never read
        "default_model": json.dumps({**good, "value": MARKUP}),
        "ocr_language": json.dumps({**good, "value": OSC52}),
        "max_retries": "not json",
        "batch_interval": b"\xff\xfe{",  # not even UTF-8
        "request_timeout": json.dumps([1, 2]),
        "queue_limit": json.dumps({**good, "value": "0"}),  # out of range
        "starvation_bound": json.dumps({**good, "value": "7", "at": 1e300}),
        MARKUP: json.dumps(good),
        "store_url": json.dumps({**good, "value": "redis://evil"}),  # not a live key: never read
    })
    await r.aclose()


async def test_hostile_entries_are_refused_with_a_line_and_nothing_crashes(
        store_env: str, tmp_path: Path, built_knowledge: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    await plant(store_env)
    stored = await read_fleet_settings(store_env, "test")
    assert [(s.key, s.value) for s in stored.settings] == [("alert_cpu_percent", "70")]
    assert "\x1b" not in stored.settings[0].operator and stored.settings[0].store_user.startswith("?'")
    assert len(stored.refused) == 9
    for argv in (["fleet", "settings"], ["fleet", "settings", "--json"]):
        code, out, err = await in_thread(argv, capsys)
        assert code == 0 and "Traceback" not in out + err
        assert "\x1b" not in out + err and "\x07" not in out + err
    code, out, _ = await in_thread(["fleet", "settings"], capsys)
    for line in ("! refused, not applied by any member: groq_concurrent: its entry is over 1024 bytes (not read)",
                 "! refused, not applied by any member: max_retries: not JSON",
                 "! refused, not applied by any member: batch_interval: not JSON",
                 "! refused, not applied by any member: request_timeout: expected an object",
                 "! refused, not applied by any member: default_model: the value ?'[@click",
                 "! refused, not applied by any member: ocr_language: the value ?'",
                 "! refused, not applied by any member: starvation_bound: its time is not a number",
                 "! refused, not applied by any member: 2 entries under names that are no live setting ignored"):
        assert line in out, out
    assert "queue_limit" in out and "1 to 1000000" in out

    caplog.set_level(logging.WARNING, logger="medops.core")
    async with started(store_env, tmp_path, built_knowledge, "ward") as ward:
        assert ward.settings.alert_cpu_percent == 70.0  # the one good entry, applied
        assert ward.settings.groq_concurrent == Settings().groq_concurrent
        assert ward.settings.default_model == Settings().default_model
        said = [r.getMessage() for r in caplog.records]
        refusals = [m for m in said if m.startswith("a fleet-wide setting in the store was refused")]
        assert len(refusals) == 9
        assert not any("\x1b" in m or "\x07" in m for m in said)
        assert any(m.startswith("applied fleet settings from the store: alert_cpu_percent=70 (was 90.0; set by "
                                "store user ?'") for m in said)


def test_a_cli_run_that_joins_later_says_on_stderr_what_it_applied(store_env: str, tmp_path: Path,
                                                                    built_knowledge: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["fleet", "set", "groq_concurrent", "5", "--all"], capsys)
    assert code == 0 and "no member alive to act on" in out  # kept all the same: exit 0
    data = tmp_path / "later"
    data.mkdir(mode=0o700)
    shutil.copyfile(built_knowledge, data / "knowledge.duckdb")
    env = {k: v for k, v in os.environ.items() if k != "GROQ_API_KEY"}
    env.update(MEDOPS_DATA_DIR=str(data), MEDOPS_GROQ_CONCURRENT="2")
    run = subprocess.run([sys.executable, "-m", "medops", "status", "--json"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "applied fleet settings from the store: groq_concurrent=5 (was 2; set by store user default, " \
        in run.stderr
    status = json.loads(run.stdout)
    assert {"key": "groq_concurrent", "value": "5"} in status["live_settings"]
    assert status["limit_changes"][0]["by"].startswith("fleet settings in the store (set by ")


@pytest.mark.parametrize(("key", "value", "why"), [
    ("io_threads", "abc", "setting io_threads = 'abc'"),
    ("nosuch", "5", "unknown setting 'nosuch'"),
    ("groq_concurrent", "0", "out of range"),
    ("case_memory_mb", "64", "cannot change while medops runs"),
])
async def test_a_setting_every_member_would_refuse_is_refused_before_anything_is_sent(
        store_env: str, key: str, value: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await in_thread(["fleet", "set", key, value, "--all"], capsys)
    assert code == 2, out
    assert err.startswith("medops fleet set: ") and why in err and "Nothing was sent." in err
    assert out == ""
    r = redis.Redis.from_url(store_env)
    try:
        assert await r.dbsize() == 0  # no command in the stream, no fleet-wide value
    finally:
        await r.aclose()
