"""Several real `medops ask --file` processes on one store, judged by the endpoint's own counts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from textual.widgets import DataTable

from medops.console.app import MedopsApp
from medops.console.cli import main
from medops.console.commands.run import attached_app
from medops.console.panes.fleet import FleetPane
from medops.core.fleet.attached import AttachedFleet
from medops.core.fleet.membership import fleet_namespace
from medops.core.fleet.view import read_fleet
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.paths import Locations
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.redis_server import RedisServer
from tests.helpers.waiting import until

MODEL = "llama-3.1-8b-instant"
LIMITS = ModelLimits(rpm=30, rpd=14_400, tpm=1_000_000, tpd=10_000_000)
PER_PROCESS = 12  # 36 in all: 30 in the first minute, the rest after it


def _prompts(path: Path, process: int) -> Path:
    lines = [{"prompt": f"fleet prompt {process}-{n}", "agent": ("triage", "diagnosis", "medication")[n % 3],
              "priority": ("critical", "high", "normal")[n % 3]} for n in range(PER_PROCESS)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _ask(tmp_path: Path, process: int, endpoint_url: str, store_url: str, knowledge: Path,
         config: Path | None = None, concurrency: int = 40) -> subprocess.Popen[str]:
    data = tmp_path / f"data-{process}"
    data.mkdir(mode=0o700)
    shutil.copyfile(knowledge, data / "knowledge.duckdb")
    if config is None:
        config = tmp_path / f"medops-{process}.toml"
        config.write_text(f'default_model = "{MODEL}"\n[models."{MODEL}"]\n'
                          f"rpm = {LIMITS.rpm}\nrpd = {LIMITS.rpd}\ntpm = {LIMITS.tpm}\ntpd = {LIMITS.tpd}\n")
    env = {k: v for k, v in os.environ.items() if k != "GROQ_API_KEY"}
    env.update(GROQ_BASE_URL=endpoint_url, MEDOPS_STORE_URL=store_url, MEDOPS_DATA_DIR=str(data))
    prompts = _prompts(tmp_path / f"prompts-{process}.jsonl", process)
    command = [sys.executable, "-m", "medops", "--config", str(config), "ask", "--file", str(prompts),
               "--concurrency", str(concurrency)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_three_processes_on_one_store_never_overrun_the_endpoint(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path) -> None:
    with EndpointThread(LocalEndpoint({MODEL: LIMITS})) as endpoint:
        runs = [_ask(tmp_path, n, endpoint.url, redis_server.url, built_knowledge) for n in range(3)]
        outputs = [run.communicate(timeout=240) for run in runs]
        stats = endpoint.stats
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        summary = lines[-1]["summary"]
        assert summary["answered"] == PER_PROCESS and summary["rate_limited_429s"] == 0
    # The endpoint enforces 30 in any 60 s itself: every request it saw was admitted, none refused.
    assert stats.rate_limited == 0
    assert stats.answered == 3 * PER_PROCESS and stats.requests == 3 * PER_PROCESS


@pytest.mark.slow
def test_fleet_json_lists_two_running_members_and_the_store_holds_no_prompt_text(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    slow = LocalEndpoint({MODEL: LIMITS}, faults=FaultModes(slow_rate=1.0, slow_seconds=4.0))
    with EndpointThread(slow) as endpoint:
        runs = [_ask(tmp_path, n, endpoint.url, redis_server.url, built_knowledge) for n in range(2)]
        try:
            monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
            monkeypatch.setenv("GROQ_BASE_URL", endpoint.url)
            monkeypatch.delenv("GROQ_API_KEY", raising=False)
            deadline = time.monotonic() + 60
            while True:
                assert main(["fleet", "--json"]) == 0
                records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
                members = [r for r in records if r["record"] == "member"]
                busy = [m for m in members if m["state"] == "alive" and m["in_flight"] > 0]
                if len(busy) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert len(busy) == 2 and {m["role"] for m in busy} == {"ask"}
            windows = [r for r in records if r["record"] == "window"]
            assert {w["name"] for w in windows} >= {"rpm", "tpm"}
            rpm = next(w for w in windows if w["name"] == "rpm")
            # Each member's part, as its own last snapshot (a beat apart) saw it.
            assert len(rpm["parts"]) == 2 and all(part > 0 for part in rpm["parts"].values())
            assert rpm["used"] <= rpm["limit"] and sum(rpm["parts"].values()) <= rpm["limit"]
        finally:
            outputs = [run.communicate(timeout=240) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    client = redis.Redis.from_url(redis_server.url)
    stored = b"".join(_dump(client, key) for key in client.scan_iter(count=1000))
    client.close()
    assert b"fleet prompt" not in stored and len(stored) > 0  # the prompts' text never reached the store


def _dump(client: redis.Redis, key: bytes) -> bytes:
    kind = client.type(key)
    if kind == b"string":
        return key + (client.get(key) or b"")
    if kind == b"hash":
        return key + b"".join(k + v for k, v in client.hgetall(key).items())
    if kind == b"zset":
        return key + b"".join(m for m, _ in client.zrange(key, 0, -1, withscores=True))
    if kind == b"stream":
        return key + b"".join(k + v for _, fields in client.xrange(key) for k, v in fields.items())
    return key


def _one_at_a_time(tmp_path: Path, endpoint_url: str, store_url: str, knowledge: Path) -> subprocess.Popen[str]:
    """An ask --file run sending one prompt at a time (for the pause tests: each answer takes the endpoint 1 s)."""
    config = tmp_path / "one-at-a-time.toml"
    config.write_text(f'default_model = "{MODEL}"\n[models."{MODEL}"]\nrpm = 30\n'
                      "rpd = 14400\ntpm = 1000000\ntpd = 10000000\n")
    return _ask(tmp_path, 0, endpoint_url, store_url, knowledge, config=config, concurrency=1)


@pytest.mark.slow
def test_an_operator_pauses_and_resumes_an_ask_run_in_another_process(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    slow = LocalEndpoint({MODEL: LIMITS}, faults=FaultModes(slow_rate=1.0, slow_seconds=1.0))
    with EndpointThread(slow) as endpoint:
        run = _one_at_a_time(tmp_path, endpoint.url, redis_server.url, built_knowledge)
        try:
            monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
            monkeypatch.setenv("GROQ_BASE_URL", endpoint.url)
            monkeypatch.delenv("GROQ_API_KEY", raising=False)
            deadline = time.monotonic() + 60
            while endpoint.stats.answered < 1:
                assert time.monotonic() < deadline, "the run never got going"
                time.sleep(0.1)
            assert main(["fleet", "--json"]) == 0
            member = next(m for m in map(json.loads, capsys.readouterr().out.splitlines())
                          if m["record"] == "member" and m["state"] == "alive")
            assert main(["fleet", "pause", "--instance", member["instance"]]) == 0
            assert "applied" in capsys.readouterr().out
            time.sleep(2.5)  # the one in flight finishes
            held = endpoint.stats.requests
            time.sleep(6)  # room for more, one at a time each second, but intake is paused
            assert endpoint.stats.requests == held < PER_PROCESS and run.poll() is None
            assert main(["fleet"]) == 0  # the list says so too, as the Fleet tab does
            listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(member["instance"]))
            assert "alive paused" in listed
            assert main(["fleet", "resume", "--all"]) == 0
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:  # a failed check must not leave the run paused for ever
                run.kill()
                run.communicate()
    assert run.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["answered"] == PER_PROCESS
    assert endpoint.stats.answered == PER_PROCESS


def _cell(app: MedopsApp, instance: str, column: str) -> str:
    return str(app.query_one("#fleet-table", DataTable).get_cell(instance, column))


def _noted(app: MedopsApp, seen: list[str], text: str) -> bool:
    """Whether a notification so far held `text`; `seen` keeps them all (they expire) for the failure message."""
    seen.extend(str(n.message) for n in app._notifications if str(n.message) not in seen)
    return any(text in note for note in seen)


@pytest.mark.slow
async def test_a_console_pauses_and_resumes_an_ask_run_in_another_process_from_the_fleet_tab(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path, locations: Locations,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The console (`medops --attach`, no core of its own) selects the run's row on the Fleet tab and presses
    p: the run, one prompt at a time against a slow endpoint, sends nothing more until P resumes it."""
    slow = LocalEndpoint({MODEL: LIMITS}, faults=FaultModes(slow_rate=1.0, slow_seconds=1.0))
    with EndpointThread(slow) as endpoint:
        run = _one_at_a_time(tmp_path, endpoint.url, redis_server.url, built_knowledge)
        try:
            # The run's namespace: no key, so derived from the endpoint it uses (the console's the same way).
            monkeypatch.setenv("GROQ_BASE_URL", endpoint.url)
            monkeypatch.delenv("GROQ_API_KEY", raising=False)
            settings = Settings(store_url=redis_server.url, refresh_interval=0.25)
            namespace = fleet_namespace(settings, os.environ)
            for _ in range(600):
                view = await read_fleet(redis_server.url, namespace)
                asking = [m for m in view.members if m.state == "alive" and m.role == "ask"]
                if asking and endpoint.stats.answered >= 1:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"the run never got going: {run.poll()}, {endpoint.stats}")
            instance = asking[0].instance
            app = attached_app(AttachedFleet(settings), locations)
            seen: list[str] = []
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.press("7")
                assert await until(pilot, lambda: instance in [str(k.value) for k in
                                                               app.query_one("#fleet-table", DataTable).rows])
                assert app.query_one(FleetPane).selected_instance() == instance  # its row, the only member
                await pilot.press("p")
                paused = f"pause intake on {instance}:\napplied: {instance}"
                assert await until(pilot, lambda: _noted(app, seen, paused), within=15), seen
                assert await until(pilot, lambda: _cell(app, instance, "state") == "alive paused", within=15)
                # The one in flight when the pause arrived finishes; then nothing more is sent.
                assert await until(pilot, lambda: endpoint.stats.in_flight == 0, within=15)
                held = endpoint.stats.requests
                await pilot.pause(6)  # room for six more, one a second, but intake is paused
                assert endpoint.stats.requests == held < PER_PROCESS and run.poll() is None
                assert _cell(app, instance, "state") == "alive paused"

                await pilot.press("P")
                resumed = f"resume intake on {instance}:\napplied: {instance}"
                assert await until(pilot, lambda: _noted(app, seen, resumed), within=15), seen
                assert await until(pilot, lambda: endpoint.stats.requests > held, within=15)
                assert await until(pilot, lambda: "paused" not in _cell(app, instance, "state"), within=15)
            out, err = await asyncio.to_thread(run.communicate, timeout=90)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate(timeout=10)
    assert run.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["answered"] == PER_PROCESS
    assert endpoint.stats.answered == PER_PROCESS
