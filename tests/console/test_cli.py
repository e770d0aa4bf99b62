"""The `medops` command line: version, doctor, status and config."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from medops.console.cli import build_parser, main
from medops.console.commands import worker as worker_command
from medops.core import __version__
from medops.core.doctor import run_checks
from medops.core.groq.errors import RequestRejected, TimedOut, UpstreamUnavailable
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.requests import PromptRequest
from medops.core.groq.scheduler import DeadlineExceeded
from medops.core.settings.config import ModelLimits
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.redis_server import RedisServer, free_port


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"medops {__version__}"


@pytest.mark.usefixtures("knowledge_ready")
def test_status_json_prints_one_snapshot_after_the_first_resource_sample(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_MONITOR_INTERVAL", "0.2")  # the first sample comes one interval after start
    assert main(["status", "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1  # one line: `| head -1` gives the whole object
    snapshot = json.loads(out)
    assert {"taken_at", "uptime", "quota", "scheduler", "slots", "system", "alerts"} <= set(snapshot)
    system = snapshot["system"]
    assert system["sampled_at"] > 0
    assert system["rss_bytes"] > 0 and system["threads"] > 0
    assert system["memory_used"] > 0 and system["cpu_per_core"]


@pytest.mark.usefixtures("knowledge_ready")
def test_status_without_json_prints_a_short_summary_of_every_part(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_MONITOR_INTERVAL", "0.2")
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["groq", "quota", "burn", "burn", "queue", "cases", "pools",
                                                        "system", "knowledge", "alerts"]
    assert "medops' local endpoint" in lines[0]  # which Groq, in words
    assert lines[1].startswith("quota      llama-3.1-8b-instant: rpm 0/30")
    assert "slots used" in lines[5] and "memory" in lines[7]
    assert "--json" in lines[-1]


@pytest.mark.usefixtures("knowledge_ready")
def test_status_names_the_fleets_store_and_how_many_share_it(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    monkeypatch.setenv("MEDOPS_MONITOR_INTERVAL", "0.2")
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    assert main(["status"]) == 0
    store = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("store "))
    # A fresh store may still be seeding at the first sample (an instant); either way it names the store.
    assert store.startswith(f"store      {redis_server.url}: ") and "1 member alive" in store
    assert main(["fleet", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # JSON Lines: a record a line
    assert records[0]["record"] == "fleet" and records[0]["store"] == redis_server.url
    assert records[0]["members"] == 0  # a short run that ended leaves no row in the fleet's list
    assert {r["record"] for r in records[1:]} <= {"window"} and len(records) == 1 + records[0]["windows"]


@pytest.mark.usefixtures("knowledge_ready")
def test_status_says_a_store_it_never_reached_lets_nothing_through(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in a trial: with the store stopped the summary's quota read "rpm 0/0", and nothing said why.
    monkeypatch.setenv("MEDOPS_MONITOR_INTERVAL", "0.2")
    monkeypatch.setenv("MEDOPS_STORE_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert main(["status"]) == 0
    store = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("store "))
    assert "unreachable since" in store and "nothing admitted until it answers" in store


MEDOPS = Path(sys.executable).parent / "medops"


@pytest.mark.usefixtures("knowledge_ready")
@pytest.mark.parametrize("command", [["kb", "search", "pain"], ["config", "show"]])
def test_a_closed_pipe_ends_a_command_quietly(command: list[str]) -> None:
    # The reader is gone before medops writes a byte (it takes a second to start): `medops ... | head -0`.
    run = subprocess.Popen([MEDOPS, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout is not None and run.stderr is not None
    run.stdout.close()
    err = run.stderr.read().decode()
    assert run.wait(timeout=60) == 141, err  # as a shell reports `yes | head -1`
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_config_show_prints_value_and_source(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_QUEUE_LIMIT", "42")
    assert main(["config", "show"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("queue_limit "))
    assert "42" in line and "env MEDOPS_QUEUE_LIMIT" in line


@pytest.mark.parametrize(("env", "url", "source"), [
    ({}, "http://127.0.0.1:<a free port at start>",
     "in-process local endpoint: GROQ_API_KEY unset (with a key: https://api.groq.com)"),
    ({"MEDOPS_ENDPOINT_PORT": "8471"}, "http://127.0.0.1:8471", "in-process local endpoint: GROQ_API_KEY unset"),
    ({"GROQ_BASE_URL": "http://127.0.0.1:9"}, "http://127.0.0.1:9", "env GROQ_BASE_URL, GROQ_API_KEY unset"),
    ({"GROQ_API_KEY": "gsk_secret"}, "https://api.groq.com", "default"),
])
def test_config_show_lists_the_groq_url_in_effect(env: dict[str, str], url: str, source: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("groq_base_url "))
    assert line.split(maxsplit=1)[1].startswith(f"{url}  ") and source in line
    assert "gsk_secret" not in out


def test_bad_setting_exits_2_with_a_clear_message(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_GROQ_CONCURRENT", "-3")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medops: setting groq_concurrent = -3 (from env MEDOPS_GROQ_CONCURRENT)")
    assert "Traceback" not in err


def test_doctor_reports_each_check_and_exits_zero_when_essentials_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    for name in ("python", "textual", "groq", "duckdb", "tesseract", "data folder", "shared memory", "groq key"):
        assert f" {name} " in out
    assert "uses its local endpoint" in out
    assert code == 0


def test_doctor_fails_when_the_data_folder_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    checks = {c.name: c for c in run_checks(Locations(tmp_path, blocker / "data"), env={})}
    assert not checks["data folder"].ok and checks["data folder"].essential
    assert "MEDOPS_DATA_DIR" in checks["data folder"].detail


def test_doctor_flags_an_intake_folder_that_is_not_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_INTAKE_DIRS", str(tmp_path / "scans-not-mounted"))
    main(["doctor"])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.split()[1:3] == ["intake", "folders"])
    assert line.startswith("warn") and f"intake folder {tmp_path / 'scans-not-mounted'} does not exist" in line


def test_doctor_says_when_the_groq_key_is_set_without_showing_it(tmp_path: Path) -> None:
    checks = {c.name: c for c in run_checks(Locations(tmp_path, tmp_path / "d"), env={"GROQ_API_KEY": "gsk_secret"})}
    assert "talks to Groq" in checks["groq key"].detail
    assert "gsk_secret" not in checks["groq key"].detail


def test_console_script_is_installed() -> None:
    out = subprocess.run([Path(sys.executable).parent / "medops", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "doctor" in out.stdout and "status" in out.stdout


def test_doctor_checks_the_quota_store_without_showing_its_password(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url.replace("redis://", "redis://default:@"))
    main(["doctor"])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.split()[1:3] == ["quota", "store"])
    assert line.startswith("ok") and "answers in" in line and "redis://***@127.0.0.1" in line


def test_doctor_fails_a_quota_store_that_does_not_answer(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_STORE_URL", "redis://ops:s3cret@127.0.0.1:1/0")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.split()[1:3] == ["quota", "store"])
    assert line.startswith("FAIL") and "does not answer" in line and "s3cret" not in out


def test_fleet_without_a_store_says_what_to_set(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MEDOPS_STORE_URL", raising=False)
    assert main(["fleet"]) == 2
    assert "set store_url (MEDOPS_STORE_URL)" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [
    (["fleet", "set", "groq_concurrent"], "the value for groq_concurrent is missing"),
    (["fleet", "set", "groq_concurrent", "--all"], "the value for groq_concurrent is missing"),
    (["fleet", "set"], "`set` takes KEY VALUE"),
])
def test_fleet_set_without_its_value_says_what_is_missing(argv: list[str], expected: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_fleet_with_a_store_that_does_not_answer_fails_without_its_password(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_STORE_URL", "redis://ops:s3cret@127.0.0.1:1/0")
    assert main(["fleet", "--json"]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "redis://***@127.0.0.1:1/0" in err and "s3cret" not in err


@pytest.mark.usefixtures("knowledge_ready")
def test_worker_sends_a_steady_mix_until_its_duration_and_says_what_came_back(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--rate", "8", "--duration", "1.5"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    sent = int(summary.split("sent ")[1].split(",")[0])
    assert sent > 0 and summary == f"worker done: sent {sent}, answered {sent}"


def test_a_stopping_worker_says_what_it_waits_for_and_a_second_interrupt_drops_it(
        tmp_path: Path, built_knowledge: Path) -> None:
    # Seen in a trial: after Ctrl-C (or SIGTERM) a worker with prompts queued printed nothing and did not exit
    # for two minutes, and a second Ctrl-C changed nothing.
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    shutil.copyfile(built_knowledge, data / "knowledge.duckdb")
    slow = LocalEndpoint({"llama-3.1-8b-instant": ModelLimits(rpm=30, rpd=14_400, tpm=6_000, tpd=500_000)},
                         faults=FaultModes(slow_rate=1.0, slow_seconds=60.0))
    with EndpointThread(slow) as endpoint:
        env = {k: v for k, v in os.environ.items() if k not in ("GROQ_API_KEY", "MEDOPS_STORE_URL")}
        env.update(GROQ_BASE_URL=endpoint.url, MEDOPS_DATA_DIR=str(data))
        run = subprocess.Popen([MEDOPS, "worker", "--rate", "10", "--seed", "1"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert run.stdout is not None
        try:
            assert " s  sent " in run.stdout.readline()  # a second of sending: prompts are waiting
            run.send_signal(signal.SIGINT)
            # What waits in the queue is withdrawn at once; the prompts at Groq get up to 60 s (within systemd's 90).
            stopping = run.stdout.readline()
            assert re.match(r"stopping: \d+ queued withdrawn; waiting up to 60 s for the \d+ prompts at Groq", stopping)
            run.send_signal(signal.SIGINT)
            out, err = run.communicate(timeout=60)
        finally:
            run.kill()
    assert run.returncode == 1, err
    summary = out.splitlines()[-1]
    assert summary.startswith("worker done: sent ") and "dropped at stop" in summary


class ThirdsCore:
    """A core that answers one prompt in three at once, times one out and answers the third half a second later."""

    def __init__(self) -> None:
        self.asked = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def snapshot(self) -> CoreSnapshot:
        return CoreSnapshot(0.0, 0.0)

    async def ask(self, request: PromptRequest) -> None:
        self.asked += 1
        if self.asked % 3 == 1:
            return None
        if self.asked % 3 == 2:
            raise DeadlineExceeded("no answer within the deadline")
        await asyncio.sleep(0.5)


def test_the_workers_progress_line_counts_every_end_so_its_numbers_add_up(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Seen in a trial: "sent 684 answered 67 waiting 246" left out 371 timeouts.
    asyncio.run(worker_command._run(ThirdsCore(), 50.0, 2.5, None, random.Random(1)))
    progress = [line for line in capsys.readouterr().out.splitlines() if " s  sent " in line]
    assert progress
    for line in progress:
        figures = {name: int(n) for name, n in re.findall(r"([a-z][a-z ]*) (\d+)", line.split(" s  ", 1)[1])}
        assert figures["past deadline"] > 0  # words, not the class's name
        assert figures["answered"] + figures["past deadline"] + figures["waiting"] == figures["sent"]


def test_the_worker_tells_a_timeout_from_a_5xx_and_a_connection_never_made() -> None:
    from medops.core.groq.sender import ConnectTimeout

    assert worker_command.outcome(TimedOut("no answer within 30s")) == "timed out"
    assert worker_command.outcome(UpstreamUnavailable("server error HTTP 502", status=502)) == "upstream failed"
    assert worker_command.outcome(ConnectTimeout("no connection within 30s")) == "never sent"
    assert worker_command.outcome(RequestRejected(400, "bad")) == "rejected 400"


def test_worker_refuses_a_rate_it_cannot_keep(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--rate", "0"]) == 2
    assert "--rate 0 is out of range" in capsys.readouterr().err


def test_medops_themes_dir_as_the_readme_documents_is_not_taken_for_a_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_THEMES_DIR", str(tmp_path / "themes"))
    assert main(["config", "show"]) == 0
    assert "unknown setting" not in capsys.readouterr().err


@pytest.mark.parametrize(("env", "expected"), [
    ({"GROQ_API_KEY": "gsk_clé"}, "GROQ_API_KEY holds characters a Groq key never has"),
    ({"GROQ_BASE_URL": "http://user:pw@proxy.example:3128"}, "'http://***@proxy.example:3128' uses plain http"),
])
def test_doctor_reports_a_key_or_base_url_medops_would_refuse_without_showing_secrets(
        locations: Locations, env: dict[str, str], expected: str) -> None:
    check = next(c for c in run_checks(locations, env=env) if c.name == "groq key")
    assert not check.ok and check.essential and expected in check.detail
    assert "clé" not in check.detail and "pw@" not in check.detail


@pytest.mark.parametrize(("argv", "usage"), [
    (["worker", "--bogus"], "usage: medops worker "),
    (["limits", "history", "--bogus"], "usage: medops limits history "),
])
def test_an_unknown_option_is_named_under_its_commands_own_usage(argv: list[str], usage: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments: --bogus" in err


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser that runs a handler: the subcommands and their actions."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if parser.get_default("handler") is not None:
        yield parser
    for action in subparsers:
        for child in dict(action.choices).values():
            yield from _leaf_parsers(child)


def test_every_command_says_whether_it_changes_anything_for_read_only() -> None:
    leaves = list(_leaf_parsers(build_parser()))
    assert len(leaves) >= 15
    assert [p.prog for p in leaves if p.get_default("changes") is None] == []


@pytest.mark.parametrize(("argv", "what"), [
    (["ask", "Patient X has chest pain"], "medops ask: refused under --read-only: sending a prompt"),
    (["ask", "--file", "prompts.jsonl"], "sending prompts from a file"),
    (["extract", "scan.pdf"], "medops extract: refused under --read-only: extracting documents"),
    (["worker", "--duration", "1"], "running a drill worker"),
    (["gateway"], "serving the gateway"),
    (["gateway", "key", "add", "ward", "--agent", "triage", "--priority", "high"], "medops gateway key add: refused"),
    (["gateway", "key", "revoke", "ward"], "revoking an agent key"),
    (["serve", "--operator"], "serving an acting console"),
    (["fleet", "pause", "--all"], "medops fleet pause: refused under --read-only: pausing intake"),
    (["fleet", "resume", "--all"], "resuming intake"),
    (["fleet", "set", "groq_concurrent", "5", "--all"], "setting a limit"),
    (["fleet", "unset", "groq_concurrent"], "removing a fleet-wide setting"),
    (["fleet", "clear", "llama-3.1-8b-instant"], "lifting a model's blocks"),
    (["fleet", "forget", "--left"], "forgetting members' rows"),
    (["fleet", "acl", "--apply"], "creating the store's ACL users"),
    (["requests", "cancel", "0123456789abcdef"], "medops requests cancel: refused under --read-only: cancelling"),
    (["requests", "priority", "0123456789abcdef", "high"], "changing a request's priority"),
])
def test_read_only_refuses_every_command_that_spends_quota_or_changes_the_fleet(
        argv: list[str], what: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    assert main(["--read-only", *argv]) == 2
    err = capsys.readouterr().err
    assert what in err and "Nothing was sent and no quota spent" in err and "without --read-only" in err
    assert "chest pain" not in err  # the prompt's text is patient data: never echoed
    assert redis.Redis.from_url(redis_server.url).dbsize() == 0  # no command, setting, key or row written


@pytest.mark.parametrize("argv", [["fleet"], ["fleet", "settings"], ["requests"], ["config", "show"],
                                  ["limits", "history"], ["fleet", "acl"], ["gateway", "key", "list"]])
def test_read_only_still_runs_what_only_reads(argv: list[str], redis_server: RedisServer,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    assert main(["--read-only", *argv]) == 0
    assert "refused" not in capsys.readouterr().err


def test_fleet_names_its_namespace_and_the_other_fleets_on_the_same_store(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from medops.core.fleet.store import namespace_for

    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    monkeypatch.setenv("GROQ_BASE_URL", "http://127.0.0.1:18080")  # the trial's worker: another endpoint
    elsewhere = namespace_for(None, "http://127.0.0.1:18080")
    assert main(["fleet"]) == 0
    assert capsys.readouterr().out.startswith(f"fleet {elsewhere} on ")
    store = redis.Redis.from_url(redis_server.url)
    store.hset(f"medops:{{{elsewhere}}}:members", "worker-1", "{}")  # as that worker's joining leaves it
    store.hset("medops:{\x1b]52;c;SGVsbG8=\x07}:members", "x", "{}")  # a planted name: never printed
    monkeypatch.delenv("GROQ_BASE_URL")
    here = namespace_for(None, "in-process")  # the console's, with neither key nor endpoint set
    assert main(["fleet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"fleet {here} on {redis_server.url}: 0 alive, 0 stale, 0 gone, 0 left"
    assert lines[1] == (f"! 1 other fleet shares this store (another Groq key or endpoint): {elsewhere}; see one "
                        "with: medops fleet --namespace NAME")
    assert main(["fleet", "--json"]) == 0
    fleet = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (fleet["namespace"], fleet["other_namespaces"]) == (here, [elsewhere])

    assert main(["fleet", "--namespace", elsewhere]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(f"fleet {elsewhere} on {redis_server.url}: ")
    assert main(["fleet", "--namespace", "a b"]) == 2
    assert "--namespace takes a namespace as `medops fleet` names them" in capsys.readouterr().err
