"""`medops ask` and `ResourceCore.ask`: the Groq path end to end against the local endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medops.console.cli import main
from medops.console.commands.ask import line_ranges
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.prompt_input import load_prompt_file
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.memory.segment import PREFIX, SHM_DIR
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import DEFAULT_MODELS, Settings
from medops.core.settings.paths import Locations
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.redis_server import free_port

MODEL = "llama-3.1-8b-instant"
MEDOPS = Path(sys.executable).parent / "medops"


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((json.dumps(line) if not isinstance(line, str) else line) + "\n" for line in lines))
    return path


@pytest.mark.usefixtures("knowledge_ready")
async def test_core_ask_goes_through_scheduler_quota_and_the_in_process_endpoint(locations: Locations) -> None:
    core = ResourceCore(Settings(), locations)
    await core.start()
    try:
        result = await core.ask(PromptRequest("Check the path.", "triage", Priority.CRITICAL,
                                              max_completion_tokens=100))
        snapshot = core.snapshot()
    finally:
        await core.stop()
    assert result.completion.text.startswith("[medops local endpoint]")
    assert result.attempts == 1 and result.latency >= result.queue_wait >= 0
    assert result.quota_left["rpm"] == DEFAULT_MODELS[MODEL].rpm - 1
    assert snapshot.endpoint.kind == "local" and snapshot.endpoint.base_url.startswith("http://127.0.0.1:")
    assert snapshot.endpoint.healthy
    assert snapshot.scheduler.completed == 1
    http = next(pool for pool in snapshot.pools if pool.name == "http")
    assert (http.completed, http.active) == (1, 0)
    quota = next(m for m in snapshot.quota.models if m.model == MODEL)
    assert {w.name: w.used for w in quota.windows}["rpd"] == 1
    assert quota.server.remaining_requests == DEFAULT_MODELS[MODEL].rpd - 1


@pytest.mark.usefixtures("knowledge_ready")
async def test_paused_intake_holds_prompts_until_resumed(locations: Locations) -> None:
    core = ResourceCore(Settings(), locations)
    await core.start()
    try:
        core.pause_intake()
        asking = asyncio.create_task(core.ask(PromptRequest("Held?", "triage", Priority.CRITICAL,
                                                            max_completion_tokens=50)))
        await asyncio.sleep(0.2)
        assert not asking.done() and core.snapshot().scheduler.paused
        core.resume_intake()
        result = await asyncio.wait_for(asking, 10)
    finally:
        await core.stop()
    assert result.completion.text and result.attempts == 1


@pytest.mark.usefixtures("knowledge_ready")
def test_ask_prints_reply_tokens_latency_queue_wait_quota_and_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Is the path up?", "--agent", "triage", "--priority", "critical"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[medops local endpoint]")
    assert "endpoint:    local endpoint http://127.0.0.1:" in out and "GROQ_API_KEY unset" in out
    assert "tokens:      prompt " in out and "latency:" in out and "queue wait" in out
    assert f"rpm {DEFAULT_MODELS[MODEL].rpm - 1}/{DEFAULT_MODELS[MODEL].rpm}" in out


@pytest.mark.usefixtures("knowledge_ready")
def test_ask_json_names_the_model_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Which model?", "--model", "qwen/qwen3-32b", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"] == "qwen/qwen3-32b" and answer["endpoint"]["kind"] == "local"


@pytest.mark.usefixtures("knowledge_ready")
def test_fail_fast_refuses_when_the_quota_has_no_room(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "medops.toml"
    config.write_text(f'[models."{MODEL}"]\nrpm = 1\nrpd = 10\ntpm = 6000\ntpd = 500000\n')
    assert main(["--config", str(config), "ask", "first", "--max-tokens", "50"]) == 0
    # Tried and refused (no room now): 1, as the README's exit statuses say; 2 is for a command to change.
    assert main(["--config", str(config), "ask", "second", "--max-tokens", "50", "--fail-fast"]) == 1
    err = capsys.readouterr().err
    assert "has no room" in err and "rpm" in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["ask", "   "], "the prompt is empty"),
    (["ask", "hello", "--model", "gpt-imaginary"], f"unknown model 'gpt-imaginary'; known models: {MODEL}"),
    (["ask", "x" * 400_000], "exceeds llama-3.1-8b-instant's context window of 131,072 tokens"),
    (["ask", "hello", "--priority", "urgent"], "priority 'urgent' is not one of critical, high, normal"),
    (["ask"], 'nothing to send: give the prompt, as in medops ask "text", or a file of prompts'),
    (["ask", "hello", "--file", "p.jsonl"], "give the prompt text or --file prompts.jsonl, not both"),
    (["ask", "hello", "--agent", "nobody"],
     "agent must be one of triage, diagnosis, medication, documentation, oncall (this one is 6 characters"),
])
def test_bad_input_is_refused_with_a_clear_message(argv: list[str], expected: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert "x" * 50 not in err  # never echoes the prompt


@pytest.mark.usefixtures("knowledge_ready")
@pytest.mark.parametrize(("argv", "bound"), [(["ask", "hello"], "1"), (["ask", "hello", "--deadline", "1.5"], "1.5")])
def test_a_store_never_reached_ends_ask_naming_it_instead_of_waiting_for_ever(
        argv: list[str], bound: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Seen in a trial: with no store at store_url, `medops ask hello` said "running on a local share" and hung.
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("MEDOPS_STORE_URL", url)
    monkeypatch.setenv("MEDOPS_STORE_WAIT", "1")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert f"medops: quota store {url} never answered in {bound} s" in captured.err
    assert "nothing was sent" in captured.err and "MEDOPS_STORE_URL" in captured.err
    assert captured.out == ""


def test_malformed_jsonl_line_is_named_by_its_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": "a", "agent": "triage"}, "",
                                                 '{"prompt": "b", "agent": }'])
    assert main(["ask", "--file", str(prompts)]) == 2
    err = capsys.readouterr().err
    assert f"{prompts} line 3 is not valid JSON" in err
    assert capsys.readouterr().out == ""  # nothing was sent


def test_every_bad_jsonl_line_is_named_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", ['{"prompt": 5}', {"prompt": "b", "agent": "triage"},
                                                 "not json", {"prompt": "c", "agent": "triage", "model": "nope"}])
    assert main(["ask", "--file", str(prompts)]) == 2
    err = capsys.readouterr().err
    assert f"3 of 4 lines in {prompts} are not valid prompts; nothing was sent" in err
    for number in (1, 3, 4):
        assert f"{prompts} line {number}" in err
    assert f"{prompts} line 2" not in err


def test_jsonl_lines_without_an_agent_take_the_command_lines_agent(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b", "agent": "triage"}])
    assert [p.request.agent for p in load_prompt_file(prompts, Settings())] == ["oncall", "triage"]
    assert [p.request.agent for p in load_prompt_file(prompts, Settings(), "medication")] == ["medication", "triage"]


def test_jsonl_line_with_an_unknown_agent_is_refused_without_echoing_free_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": "a", "agent": "Jane Roe, ward 4"}])
    assert main(["ask", "--file", str(prompts)]) == 2
    err = capsys.readouterr().err
    assert "line 1: agent must be one of triage, diagnosis, medication, documentation, oncall (this one is 16 " \
        "characters and was not echoed)" in err
    assert "Jane Roe" not in err


@pytest.mark.parametrize(("messages", "said"), [
    ("Jane Roe, chest pain", '"messages" must be a list of messages, not text; write e.g. "messages": '
                             '[{"role": "user", "content": "..."}], or use "prompt" for one text'),
    ({"role": "user", "content": "Jane Roe, chest pain"}, '"messages" must be a list of messages, not an object'),
    ([], '"messages" is an empty list; give at least one message'),
    (["Jane Roe, chest pain"], 'message 1 of "messages" is text, not an object with "role" and "content"'),
])
def test_jsonl_messages_of_the_wrong_shape_say_a_list_of_messages_is_wanted_without_echoing_it(
        tmp_path: Path, messages: object, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": "a"}, {"messages": messages}])
    assert main(["ask", "--file", str(prompts)]) == 2
    err = capsys.readouterr().err
    assert f"line 2: {said}" in err
    assert "Jane Roe" not in err and "minimum number of items" not in err


def test_jsonl_line_with_an_unknown_model_lists_the_known_ones(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": "a", "agent": "triage", "model": "nope"}])
    assert main(["ask", "--file", str(prompts)]) == 2
    assert "line 1: unknown model 'nope'; known models:" in capsys.readouterr().err


@pytest.mark.usefixtures("knowledge_ready")
def test_ask_file_prints_a_line_per_result_and_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [
        {"prompt": "first", "agent": "triage", "priority": "critical"},
        {"prompt": "second", "agent": "diagnosis", "deadline": 30},
        {"prompt": "too big for a minute", "agent": "triage", "max_completion_tokens": 7_000},
    ])
    assert main(["ask", "--file", str(prompts), "--concurrency", "2"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    results, summary = lines[:-1], lines[-1]["summary"]
    assert sorted(r["line"] for r in results) == [1, 2, 3]
    assert {r["line"]: r["ok"] for r in results} == {1: True, 2: True, 3: False}
    failed = next(r for r in results if not r["ok"])
    assert failed["error"] == "request_too_large" and "tokens-per-minute limit of 6,000" in failed["message"]
    assert summary["sent"] == 3 and summary["answered"] == 2
    assert summary["failed"] == {"request_too_large": 1} and summary["rate_limited_429s"] == 0
    assert summary["wall_time"] > 0 and summary["endpoint"]["kind"] == "local"


@pytest.fixture
def keyed_endpoint() -> Iterator[LocalEndpoint]:
    with EndpointThread(LocalEndpoint(DEFAULT_MODELS, api_key="gsk_the_right_key")) as endpoint:
        yield endpoint


@pytest.mark.usefixtures("knowledge_ready")
def test_wrong_key_gives_401_meaning_without_echoing_the_key(keyed_endpoint: LocalEndpoint,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_a_wrong_key")
    monkeypatch.setenv("GROQ_BASE_URL", keyed_endpoint.url)
    assert main(["ask", "hello"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "API key was refused" in err and "GROQ_API_KEY" in err
    assert "gsk_a_wrong_key" not in err and "gsk_the_right_key" not in err
    assert keyed_endpoint.stats.unauthorized == 1


@pytest.mark.slow
@pytest.mark.usefixtures("knowledge_ready")
def test_90_prompts_at_concurrency_40_against_60_rpm_get_all_answers_and_no_429(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "medops.toml"
    config.write_text(f'default_model = "{MODEL}"\n[models."{MODEL}"]\n'
                      "rpm = 60\nrpd = 14400\ntpm = 1000000\ntpd = 10000000\n")
    prompts = write_lines(tmp_path / "p.jsonl", [
        {"prompt": f"load prompt {n}", "agent": ("triage", "diagnosis", "medication")[n % 3],
         "priority": ("critical", "high", "normal")[n % 3]} for n in range(90)])
    assert main(["--config", str(config), "ask", "--file", str(prompts), "--concurrency", "40"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    results, summary = lines[:-1], lines[-1]["summary"]
    assert len(results) == 90 and all(r["ok"] for r in results)
    assert sorted(r["line"] for r in results) == list(range(1, 91))
    assert (summary["sent"], summary["answered"], summary["failed"]) == (90, 90, {})
    assert summary["rate_limited_429s"] == 0
    assert all(r["attempts"] == 1 for r in results)


def run_ask_file(path: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`medops ask --file` in its own process, its memory bounded, so a runaway read cannot hurt the test run."""
    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, resource.RLIM_INFINITY))

    env = {**os.environ, "MEDOPS_DATA_DIR": str(tmp_path / "data"), "MEDOPS_CONFIG_DIR": str(tmp_path / "config")}
    return subprocess.run([sys.executable, "-m", "medops", "ask", "--file", path], capture_output=True, text=True,
                          timeout=60, preexec_fn=bounded, env=env)


def test_a_device_as_prompts_file_is_refused_before_a_byte_is_read(tmp_path: Path) -> None:
    done = run_ask_file("/dev/zero", tmp_path)
    assert done.returncode == 2
    assert "/dev/zero is not a regular file (a folder, pipe or device)" in done.stderr


def test_a_fifo_as_prompts_file_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "prompts.jsonl"
    os.mkfifo(fifo)
    done = run_ask_file(str(fifo), tmp_path)
    assert done.returncode == 2 and "is not a regular file" in done.stderr


def test_the_size_limit_counts_bytes_read_not_what_stat_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from medops.core.groq import prompt_input

    monkeypatch.setattr(prompt_input, "MAX_FILE_BYTES", 64)
    proc_file = Path("/proc/self/mountinfo")  # a regular file whose st_size is 0
    assert proc_file.stat().st_size == 0 and len(proc_file.read_bytes()) > 64
    with pytest.raises(prompt_input.PromptFileError, match=r"over the 64-byte limit \(by line \d+\); split it"):
        prompt_input.load_prompt_file(proc_file, Settings())


@pytest.mark.usefixtures("knowledge_ready")
def test_proxy_credentials_in_groq_base_url_never_reach_an_error_message(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("GROQ_BASE_URL", f"http://proxyuser:proxyS3cret@127.0.0.1:{port}")
    monkeypatch.setenv("MEDOPS_MAX_RETRIES", "0")
    assert main(["ask", "hello"]) == 1  # tried and failed: nothing listens there
    err = capsys.readouterr().err
    assert f"http://***@127.0.0.1:{port}" in err
    assert "proxyS3cret" not in err and "proxyuser" not in err


def test_a_non_ascii_key_stops_ask_with_a_clear_message_that_never_shows_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_clé_secrète")
    assert main(["ask", "hello"]) == 2
    err = capsys.readouterr().err
    assert "GROQ_API_KEY holds characters a Groq key never has" in err
    assert "secr" not in err and "Traceback" not in err and "position" not in err


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_prompts_file_run_prints_its_summary_names_the_lines_never_answered_and_frees_its_segment(
        stop: signal.Signals, tmp_path: Path, built_knowledge: Path) -> None:
    # Seen in a trial: SIGTERM (what timeout, systemd and CI send) ended `ask --file` with 143, no summary, no word
    # on the 37 prompts never answered, and its /dev/shm segment left behind.
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    shutil.copyfile(built_knowledge, data / "knowledge.duckdb")
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": f"note {n}"} for n in range(1, 9)])
    slow = LocalEndpoint({MODEL: DEFAULT_MODELS[MODEL]}, faults=FaultModes(slow_rate=1.0, slow_seconds=60.0))
    with EndpointThread(slow) as endpoint:
        env = {k: v for k, v in os.environ.items() if k not in ("GROQ_API_KEY", "MEDOPS_STORE_URL")}
        env.update(GROQ_BASE_URL=endpoint.url, MEDOPS_DATA_DIR=str(data))
        run = subprocess.Popen([MEDOPS, "ask", "--file", str(prompts), "--concurrency", "2"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert run.stderr is not None
        try:
            line = run.stderr.readline()
            while line and not line.startswith("medops: sending "):  # start's own notes come first
                line = run.stderr.readline()
            assert line.startswith("medops: sending 8 prompts, 2 at a time")
            assert list(SHM_DIR.glob(f"{PREFIX}{run.pid}-*"))  # the run's case memory, to be freed
            run.send_signal(stop)
            out, err = run.communicate(timeout=60)
        finally:
            run.kill()
    assert run.returncode == 128 + stop.value, err
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["stopped_by"] == stop.name and summary["answered"] == 0
    assert summary["unanswered_lines"] == "1-8" and summary["sent"] <= 2
    # What the core still queued (its batch window) is withdrawn; what is at Groq gets up to 5 s.
    assert re.search(rf"{stop.name}: sending stopped; \d queued withdrawn; "
                     r"(waiting up to 5 s for the [12] prompts at Groq|none at Groq)\n", err), err
    assert "8 never answered (lines 1-8: send them with --lines 1-8)" in err and "Traceback" not in err
    assert not list(SHM_DIR.glob(f"{PREFIX}{run.pid}-*"))


def test_a_stopped_prompts_file_run_withdraws_what_only_waits_for_quota_instead_of_waiting_for_it(
        tmp_path: Path, built_knowledge: Path) -> None:
    # Seen in a trial: on SIGTERM `ask` waited 5 s for "prompts in flight" that were only queued for quota.
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    shutil.copyfile(built_knowledge, data / "knowledge.duckdb")
    config = tmp_path / "medops.toml"
    config.write_text(f'[models."{MODEL}"]\nrpm = 1\nrpd = 10\ntpm = 6000\ntpd = 500000\n')
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": f"note {n}", "max_completion_tokens": 50}
                                                 for n in range(1, 5)])
    with EndpointThread(LocalEndpoint({MODEL: DEFAULT_MODELS[MODEL]})) as endpoint:
        env = {k: v for k, v in os.environ.items() if k not in ("GROQ_API_KEY", "MEDOPS_STORE_URL")}
        env.update(GROQ_BASE_URL=endpoint.url, MEDOPS_DATA_DIR=str(data))
        run = subprocess.Popen([MEDOPS, "--config", str(config), "ask", "--file", str(prompts), "--concurrency", "4"],
                               env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert run.stdout is not None
        try:
            first = json.loads(run.stdout.readline())  # one answered: the minute's one request; three wait for it
            assert first["ok"]
            run.send_signal(signal.SIGTERM)
            out, err = run.communicate(timeout=60)
        finally:
            run.kill()
    assert run.returncode == 128 + signal.SIGTERM.value, err
    assert "SIGTERM: sending stopped; 3 queued withdrawn; none at Groq" in err and "waiting up to" not in err
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["answered"] == 1 and summary["sent"] == 4
    assert summary["unanswered_lines"] == line_ranges(sorted({1, 2, 3, 4} - {first["line"]}))


@pytest.mark.usefixtures("knowledge_ready")
def test_lines_sends_only_the_lines_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": f"note {n}"} for n in range(1, 10)])
    assert main(["ask", "--file", str(prompts), "--lines", "3,7-8"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["line"] for r in lines[:-1]) == [3, 7, 8]
    assert lines[-1]["summary"]["answered"] == 3 and lines[-1]["summary"]["unanswered_lines"] == ""


@pytest.mark.parametrize(("spec", "expected"), [
    ("3,x", "--lines '3,x': 'x' is not a line number or a range; give line numbers and ranges, e.g. --lines 3,7-9"),
    ("9-7", "--lines '9-7': '9-7' is not a range of lines (they count from 1, the smaller first)"),
    ("0", "--lines '0': '0' is not a range of lines"),
    ("", "--lines '': '' is not a line number or a range"),
    ("2,5-12", "line(s) 5-12 of {file} hold no prompt (its prompts are on lines 1-4)"),
])
def test_a_bad_lines_spec_is_refused_saying_what_is_wrong(spec: str, expected: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": f"note {n}"} for n in range(1, 5)])
    assert main(["ask", "--file", str(prompts), "--lines", spec]) == 2
    captured = capsys.readouterr()
    assert expected.format(file=prompts) in captured.err and captured.out == ""


def test_lines_without_a_file_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "hello", "--lines", "3"]) == 2
    assert "--lines applies to --file only" in capsys.readouterr().err


def test_a_prompt_that_failed_exits_1_and_one_the_command_must_change_for_exits_2() -> None:
    # The third trial: a prompt cancelled by an operator ended `medops ask` with 2, "change the command".
    from medops.console.commands.ask import exit_status
    from medops.core.errors import ConfigError
    from medops.core.groq.errors import RateLimited, RequestRejected, TimedOut
    from medops.core.groq.scheduler import DeadlineExceeded, RequestCancelled

    assert exit_status(RequestCancelled("cancelled by oncall")) == 1
    assert exit_status(DeadlineExceeded("no answer within 30 s")) == 1
    assert exit_status(TimedOut("no answer within 30s")) == 1
    assert exit_status(RateLimited(5.0)) == 1
    assert exit_status(RequestRejected(401, "API key was refused")) == 2
    assert exit_status(ConfigError("no store set")) == 2
