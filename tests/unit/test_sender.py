"""The sender: AsyncGroq (SDK retries off) against the real local endpoint."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import groq
import httpx
import pytest

from medops.core.clock import SystemClock
from medops.core.errors import ConfigError, MedopsError
from medops.core.groq import sender as sender_module
from medops.core.groq.backoff import Backoff
from medops.core.groq.errors import (
    CapacityExceeded,
    NeverSent,
    RateLimited,
    RequestRejected,
    TimedOut,
    UpstreamUnavailable,
)
from medops.core.groq.local import server as local_endpoint
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.quota import QuotaBook
from medops.core.groq.requests import PromptRequest
from medops.core.groq.scheduler import Scheduler
from medops.core.groq.sender import LOCAL_PLACEHOLDER_KEY, GroqSender, GroqTarget, choose_target
from medops.core.groq.token_estimate import estimate_prompt_tokens
from medops.core.groq.wire import completion_body, stream_chunks
from medops.core.ledger.writer import TABLES, Ledger
from medops.core.settings.config import DEFAULT_MODELS, ModelLimits, Settings

MODEL = "llama-3.1-8b-instant"
LIMITS = DEFAULT_MODELS[MODEL]
INSTANT = FaultModes(latency_scale=0.0)


def request(prompt: str = "Describe the local endpoint.", **changes: object) -> PromptRequest:
    return replace(PromptRequest(prompt, "triage", model=MODEL, max_completion_tokens=200), **changes)


@pytest.fixture
async def endpoint() -> AsyncIterator[LocalEndpoint]:
    local = LocalEndpoint(DEFAULT_MODELS, faults=INSTANT)
    await local.start()
    yield local
    await local.stop()


def make_sender(url: str, key: str = LOCAL_PLACEHOLDER_KEY, **settings: object) -> GroqSender:
    values: dict[str, object] = {"max_retries": 3, "request_timeout": 5.0} | settings
    return GroqSender(Settings(**values), GroqTarget("local", url, key, in_process=False))  # type: ignore[arg-type]


@pytest.fixture
async def sender(endpoint: LocalEndpoint) -> AsyncIterator[GroqSender]:
    sender = make_sender(endpoint.url)
    yield sender
    await sender.close()


async def test_send_returns_text_usage_request_id_and_parsed_headers(sender: GroqSender) -> None:
    completion = await sender.send(request(), timeout=10)
    assert completion.text.startswith("[medops local endpoint]")
    assert completion.model == MODEL
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
    assert completion.request_id is not None and completion.request_id.startswith("req_")
    assert completion.queue_time is not None and completion.total_time is not None
    assert completion.headers.limit_requests == LIMITS.rpd
    assert completion.headers.remaining_requests == LIMITS.rpd - 1
    assert completion.headers.remaining_tokens == LIMITS.tpm - completion.total_tokens
    assert sender.stats.answered == 1 and sender.pool_snapshot().completed == 1


async def test_a_5xx_is_one_attempt_raised_as_upstream_unavailable_for_the_scheduler_to_retry(
        endpoint: LocalEndpoint, sender: GroqSender) -> None:
    endpoint.fail_next(1, 503)
    with pytest.raises(UpstreamUnavailable) as failed:
        await sender.send(request(), timeout=10)
    assert (failed.value.status, failed.value.reason, failed.value.attempts) == (503, "server error HTTP 503", 1)
    assert endpoint.url in str(failed.value)
    assert endpoint.stats.requests == 1  # never retried here: each attempt must pass the quota first
    assert (sender.stats.attempts, sender.stats.server_errors) == (1, 1) and not sender.healthy
    assert (await sender.send(request(), timeout=10)).text
    assert sender.healthy and endpoint.stats.requests == 2


async def test_429_is_raised_for_the_scheduler_with_its_wait_and_never_retried(
        endpoint: LocalEndpoint, sender: GroqSender) -> None:
    endpoint.set_limits(MODEL, ModelLimits(rpm=1, rpd=1_000, tpm=6_000, tpd=500_000))
    await sender.send(request(), timeout=10)
    with pytest.raises(RateLimited) as limited:
        await sender.send(request(), timeout=10)
    assert limited.value.retry_after is not None and 55 <= limited.value.retry_after <= 60
    assert limited.value.limit is not None and limited.value.limit.dimension == "rpm"
    assert limited.value.headers.limit_requests == 1_000
    assert endpoint.stats.requests == 2 and sender.stats.rate_limited == 1


async def test_413_is_rejected_at_once_with_what_to_do(endpoint: LocalEndpoint, sender: GroqSender) -> None:
    with pytest.raises(RequestRejected) as rejected:
        await sender.send(request(max_completion_tokens=LIMITS.tpm), timeout=10)
    assert rejected.value.status == 413
    assert "lower max_completion_tokens" in str(rejected.value)
    assert endpoint.stats.requests == 1


async def test_unknown_model_is_rejected_as_404(endpoint: LocalEndpoint, sender: GroqSender) -> None:
    with pytest.raises(RequestRejected) as rejected:
        await sender.send(request(model="no-such-model"), timeout=10)
    assert rejected.value.status == 404 and "does not exist" in rejected.value.reason


async def test_wrong_key_is_a_401_that_never_shows_the_key() -> None:
    endpoint = LocalEndpoint(DEFAULT_MODELS, api_key="the-right-key", faults=INSTANT)
    await endpoint.start()
    sender = make_sender(endpoint.url, key="gsk_secret_wrong_key")
    try:
        with pytest.raises(RequestRejected) as rejected:
            await sender.send(request(), timeout=10)
    finally:
        await sender.close()
        await endpoint.stop()
    assert rejected.value.status == 401
    assert "API key was refused" in str(rejected.value) and "GROQ_API_KEY" in str(rejected.value)
    assert "gsk_secret_wrong_key" not in str(rejected.value) and "the-right-key" not in str(rejected.value)
    assert "gsk_secret_wrong_key" not in repr(sender.target)
    assert endpoint.stats.requests == 1


async def test_498_is_a_capacity_signal(endpoint: LocalEndpoint, sender: GroqSender) -> None:
    endpoint.fail_next(1, 498)
    with pytest.raises(CapacityExceeded):
        await sender.send(request(), timeout=10)
    assert endpoint.stats.requests == 1 and sender.stats.capacity_exceeded == 1


async def test_a_slow_answer_times_out_within_the_attempt_and_request_timeout(endpoint: LocalEndpoint) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=30))
    sender = make_sender(endpoint.url, request_timeout=0.2)
    try:
        with pytest.raises(TimedOut, match=r"no answer within 0\.2s") as late:
            await sender.send(request(), timeout=5)  # request_timeout caps one attempt
        assert not isinstance(late.value, NeverSent)  # it reached the endpoint: Groq would have counted it
        with pytest.raises(TimedOut, match=r"no answer within 0\.1s"):
            await sender.send(request(), timeout=0.1)  # and so does the time the scheduler gives it
        assert sender.stats.timeouts == 2 and sender.pool_snapshot().timeouts == 2
        assert endpoint.stats.requests == 2
    finally:
        await sender.close()


async def test_a_refused_connection_is_reported_as_never_sent(endpoint: LocalEndpoint) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, refuse_connections=True))
    sender = make_sender(endpoint.url)
    try:
        with pytest.raises(NeverSent, match=r"cannot connect \(ConnectError\)") as failed:
            await sender.send(request(), timeout=10)
        assert failed.value.status is None and failed.value.attempts == 1
        assert sender.stats.connection_errors == 1 and sender.last_failure is not None
    finally:
        await sender.close()


async def test_a_tls_failure_before_sending_is_never_sent_and_reaches_no_endpoint(endpoint: LocalEndpoint) -> None:
    sender = make_sender(endpoint.url.replace("http://", "https://"))  # TLS to a plain-HTTP listener
    try:
        with pytest.raises(NeverSent, match=r"cannot connect \(ConnectError\)"):
            await sender.send(request(), timeout=10)
        assert endpoint.stats.requests == 0
    finally:
        await sender.close()


@pytest.mark.parametrize(("cause", "never_sent"), [
    (httpx.ConnectError("refused"), True), (httpx.ConnectTimeout("no connection"), True),
    (httpx.PoolTimeout("no free connection"), True), (httpx.ReadTimeout("no answer"), False),
    (httpx.RemoteProtocolError("closed mid-answer"), False), (httpx.ReadError("reset"), False)])
def test_only_errors_raised_before_the_request_is_written_count_as_never_sent(
        cause: httpx.HTTPError, never_sent: bool) -> None:
    wrapped = groq.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1:1/openai/v1/chat/completions"))
    wrapped.__cause__ = cause  # as the SDK raises it: `raise APITimeoutError(...) from err`
    assert sender_module._never_sent(wrapped) is never_sent


async def test_pool_snapshot_counts_requests_in_flight(endpoint: LocalEndpoint, sender: GroqSender) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=0.3))
    sends = [asyncio.create_task(sender.send(request(), timeout=10)) for _ in range(3)]
    for _ in range(500):  # the endpoint holds each for 0.3 s: wait until all three arrived
        if endpoint.stats.in_flight == 3:
            break
        await asyncio.sleep(0.01)
    pool = sender.pool_snapshot()
    assert (pool.name, pool.active, pool.capacity) == ("http", 3, Settings().http_max_connections)
    await asyncio.gather(*sends)
    assert sender.pool_snapshot().active == 0


def test_target_is_groq_with_a_key_and_a_local_endpoint_without() -> None:
    settings = Settings()
    groq_target = choose_target(settings, {"GROQ_API_KEY": "gsk_x"})
    assert (groq_target.kind, groq_target.base_url, groq_target.in_process) == (
        "groq", settings.groq_base_url, False)
    assert "gsk_x" not in repr(groq_target)
    local = choose_target(settings, {})
    assert (local.kind, local.in_process) == ("local", True)
    standalone = choose_target(settings, {"GROQ_BASE_URL": "http://127.0.0.1:8123"})
    assert (standalone.kind, standalone.base_url, standalone.in_process) == ("local", "http://127.0.0.1:8123", False)
    keyed_loopback = choose_target(settings, {"GROQ_API_KEY": "k", "GROQ_BASE_URL": "http://localhost:9"})
    assert keyed_loopback.kind == "local"


@pytest.fixture
async def scheduler(endpoint: LocalEndpoint, sender: GroqSender) -> AsyncIterator[Scheduler]:
    """The real path: quota and scheduler in front of the sender, backoffs short so tests stay quick."""
    settings = Settings(max_retries=2, request_timeout=5.0, batch_interval=0.0)
    quick = Backoff(0.01, 0.05, rng=random.Random(7))
    running = Scheduler(settings, QuotaBook(settings, SystemClock()), sender, SystemClock(),
                        retry_backoff=quick, capacity_hold=quick)
    await running.start()
    yield running
    await running.stop()


def rpm_used(scheduler: Scheduler) -> int:
    return {w.name: w.used for w in scheduler._quotas[MODEL].snapshot().windows}["rpm"]


async def test_through_the_scheduler_a_5xx_then_success_is_two_attempts_both_admitted(
        endpoint: LocalEndpoint, scheduler: Scheduler) -> None:
    endpoint.fail_next(1, 503)
    result = await scheduler.submit(request())
    assert result.attempts == 2 and result.completion.text
    assert endpoint.stats.requests == 2 and rpm_used(scheduler) == 2  # the quota counted what the server saw


async def test_through_the_scheduler_an_endless_5xx_reaches_the_caller_with_its_attempts(
        endpoint: LocalEndpoint, scheduler: Scheduler) -> None:
    endpoint.fail_next(10, 500)
    with pytest.raises(UpstreamUnavailable, match=r"after 3 attempts, stopped because max_retries is 2; "
                                                  r"last: server error HTTP 500 from local") as failed:
        await scheduler.submit(request())
    assert (failed.value.attempts, failed.value.status) == (3, 500)
    assert endpoint.stats.requests == 3 and rpm_used(scheduler) == 3


async def test_through_the_scheduler_a_498_holds_the_model_then_the_request_is_answered(
        endpoint: LocalEndpoint, scheduler: Scheduler) -> None:
    endpoint.fail_next(1, 498)
    result = await scheduler.submit(request())
    assert result.attempts == 2 and result.completion.text
    quota = scheduler._quotas[MODEL].snapshot()
    assert quota.capacity_exceeded == 1 and quota.capacity_hold == 0.0  # held, then flowing again
    assert endpoint.stats.requests == 2


def windows_used(scheduler: Scheduler) -> dict[str, int]:
    return {w.name: w.used for w in scheduler._quotas[MODEL].snapshot().windows}


async def test_through_the_scheduler_refused_connections_give_their_quota_back(endpoint: LocalEndpoint,
                                                                                sender: GroqSender) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, refuse_connections=True))
    settings = Settings(max_retries=3, request_timeout=5.0, batch_interval=0.0)
    quick = Backoff(0.01, 0.05, rng=random.Random(7))
    scheduler = Scheduler(settings, QuotaBook(settings, SystemClock()), sender, SystemClock(), retry_backoff=quick)
    await scheduler.start()
    try:
        with pytest.raises(UpstreamUnavailable, match=r"after 4 attempts, stopped because max_retries is 3; "
                                                      r"last: cannot connect \(ConnectError\)"):
            await scheduler.submit(request())
        # Four attempts that never reached the endpoint: nothing counted, room at once for the next request.
        assert sender.stats.connection_errors == 4 and endpoint.stats.requests == 0
        assert windows_used(scheduler) == {"rpm": 0, "rpd": 0, "tpm": 0, "tpd": 0}
        quota = scheduler._quotas[MODEL]
        assert quota.in_flight == 0 and quota.wait_time(LIMITS.tpm) == 0.0
    finally:
        await scheduler.stop()


async def test_through_the_scheduler_a_timeout_after_sending_still_counts_the_attempt(endpoint: LocalEndpoint) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=30))
    sender = make_sender(endpoint.url, request_timeout=0.2)
    settings = Settings(max_retries=0, request_timeout=0.2, batch_interval=0.0)
    scheduler = Scheduler(settings, QuotaBook(settings, SystemClock()), sender, SystemClock())
    await scheduler.start()
    try:
        with pytest.raises(UpstreamUnavailable, match="no answer within"):
            await scheduler.submit(request())
        reserved = estimate_prompt_tokens(request().prompt) + 200
        assert endpoint.stats.requests == 1
        assert (windows_used(scheduler)["rpm"], windows_used(scheduler)["tpm"]) == (1, reserved)  # as Groq would
    finally:
        await scheduler.stop()
        await sender.close()


async def answering(endpoint: LocalEndpoint) -> None:
    """Let real time pass until the endpoint has a request in hand."""
    for _ in range(1_000):
        if endpoint.stats.requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no request reached the endpoint")


async def test_the_http_pool_shows_requests_waiting_for_a_connection_and_their_waits(endpoint: LocalEndpoint) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=0.3))
    sender = make_sender(endpoint.url, http_max_connections=1, http_max_per_host=1)
    try:
        assert sender.pool_snapshot().wait_p95 == 0.0
        sends = [asyncio.ensure_future(sender.send(request(), timeout=10)) for _ in range(3)]
        await answering(endpoint)
        busy = sender.pool_snapshot()
        assert (busy.capacity, busy.active, busy.queued) == (1, 1, 2)  # one connection, two waiting for it
        await asyncio.gather(*sends)
        done = sender.pool_snapshot()
        assert (done.active, done.queued, done.completed) == (0, 0, 3)
        # The last waited for both answers before it (0.3 s each): causality, not a speed target.
        assert done.wait_p95 >= 0.5 and done.wait_p50 >= 0.25
    finally:
        await sender.close()


async def test_an_attempt_that_times_out_waiting_for_a_connection_counts_its_wait(endpoint: LocalEndpoint) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=1.0))
    sender = make_sender(endpoint.url, http_max_connections=1, http_max_per_host=1)
    try:
        first = asyncio.ensure_future(sender.send(request(), timeout=10))
        await answering(endpoint)
        with pytest.raises(TimedOut):
            await sender.send(request(), timeout=0.3)
        assert sender.pool_snapshot().queued == 0  # gone from the queue, not stuck there
        await first
        assert sender.pool_snapshot().wait_p95 >= 0.25
    finally:
        await sender.close()


async def test_a_streamed_answer_reaches_on_text_piece_by_piece_and_ends_as_one_completion(
        endpoint: LocalEndpoint, sender: GroqSender) -> None:
    seen: list[str] = []
    completion = await sender.send(request(on_text=seen.append), timeout=10)
    assert seen[0] == "" and len(seen) > 3  # a fresh start, then several pieces
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    assert seen[-1] == completion.text and completion.text.startswith("[medops local endpoint]")
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0  # from x_groq.usage
    assert completion.request_id is not None and completion.request_id.startswith("req_")
    assert completion.headers.remaining_requests == LIMITS.rpd - 1
    assert endpoint.stats.streamed == 1 and sender.stats.answered == 1


async def test_a_streamed_attempt_that_fails_is_classified_like_any_other(endpoint: LocalEndpoint,
                                                                          sender: GroqSender) -> None:
    endpoint.fail_next(1, 503)
    seen: list[str] = []
    with pytest.raises(UpstreamUnavailable):
        await sender.send(request(on_text=seen.append), timeout=10)
    assert seen == [""]
    with pytest.raises(RequestRejected):
        await sender.send(request(model="no-such-model", on_text=seen.append), timeout=10)


async def test_a_streamed_answer_retried_by_the_scheduler_starts_its_text_again(
        endpoint: LocalEndpoint, scheduler: Scheduler) -> None:
    endpoint.fail_next(1, 503)
    seen: list[str] = []
    result = await scheduler.submit(request(on_text=seen.append))
    assert result.attempts == 2 and seen.count("") == 2  # one fresh start per attempt
    assert seen[-1] == result.completion.text and result.completion.completion_tokens > 0
    assert rpm_used(scheduler) == 2


async def test_a_stream_without_usage_is_counted_as_its_whole_reservation(
        endpoint: LocalEndpoint, sender: GroqSender, monkeypatch: pytest.MonkeyPatch) -> None:
    def without_usage(answer: Any) -> Iterator[dict[str, Any]]:
        for chunk in stream_chunks(answer):
            chunk.get("x_groq", {}).pop("usage", None)
            yield chunk

    monkeypatch.setattr(local_endpoint, "stream_chunks", without_usage)
    asked = request(on_text=lambda text: None, max_completion_tokens=300)
    completion = await sender.send(asked, timeout=10)
    assert completion.text  # the answer itself came through
    assert completion.completion_tokens == 300  # never less than the server may have counted
    assert completion.prompt_tokens == estimate_prompt_tokens(asked.prompt)


@pytest.mark.parametrize("cut", ["error", "no_finish"])
async def test_a_stream_cut_off_early_is_a_failed_attempt_not_an_answer(
        endpoint: LocalEndpoint, sender: GroqSender, monkeypatch: pytest.MonkeyPatch, cut: str) -> None:
    def cut_off(answer: Any) -> Iterator[dict[str, Any]]:
        chunks = list(stream_chunks(answer))
        yield from chunks[:2]  # the role, then one piece of the text
        if cut == "error":  # what Groq sends when it stops a stream part way
            yield {**chunks[-1], "choices": [], "x_groq": {"id": answer.request_id, "error": "over capacity"}}

    monkeypatch.setattr(local_endpoint, "stream_chunks", cut_off)
    seen: list[str] = []
    with pytest.raises(UpstreamUnavailable, match=r"stopped early|ended before it was finished"):
        await sender.send(request(on_text=seen.append), timeout=10)
    assert seen[-1]  # a piece had been shown; the scheduler's retry starts the text again
    assert sender.stats.answered == 0 and sender.stats.failed == 1


SEND_WITH_SDK_DEBUG = """
import asyncio, logging
logging.basicConfig(level=logging.DEBUG)
from medops.core.settings.config import DEFAULT_MODELS, Settings
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.sender import LOCAL_PLACEHOLDER_KEY, GroqSender, GroqTarget
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.requests import PromptRequest

async def main():
    endpoint = LocalEndpoint(DEFAULT_MODELS, faults=FaultModes(latency_scale=0.0))
    await endpoint.start()
    sender = GroqSender(Settings(), GroqTarget("local", endpoint.url, LOCAL_PLACEHOLDER_KEY, in_process=False))
    await sender.send(PromptRequest("Jane Roe, HIV positive, asks about dosage", "triage"), timeout=10)
    await sender.close()
    await endpoint.stop()
    print("sent")

asyncio.run(main())
"""


def test_the_sdk_never_logs_prompts_even_with_groq_log_debug() -> None:
    env = {**os.environ, "GROQ_LOG": "debug"}
    done = subprocess.run([sys.executable, "-c", SEND_WITH_SDK_DEBUG], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and "sent" in done.stdout, done.stderr[-2000:]
    assert "DEBUG" in done.stderr  # logging was on, for the other libraries
    assert "Jane Roe" not in done.stderr + done.stdout


async def test_an_answer_without_usage_is_counted_as_its_whole_reservation(
        endpoint: LocalEndpoint, sender: GroqSender, monkeypatch: pytest.MonkeyPatch) -> None:
    def without_usage(answer: Any) -> dict[str, Any]:
        body = completion_body(answer)
        body.pop("usage", None)
        return body

    monkeypatch.setattr(local_endpoint, "completion_body", without_usage)
    asked = request(max_completion_tokens=250)
    completion = await sender.send(asked, timeout=10)
    assert completion.text and completion.completion_tokens == 250
    assert completion.prompt_tokens == estimate_prompt_tokens(asked.prompt)


MARKER = "Zq7PatientMarker"  # a word no error text, log line or ledger row has any business holding
ROOMY_LIMITS = ModelLimits(rpm=1_000, rpd=100_000, tpm=1_000_000, tpd=10_000_000)
OTHER_MODEL = "qwen/qwen3-32b"


async def test_a_prompt_reaches_no_error_log_or_ledger_row_whatever_the_endpoint_answers(
        endpoint: LocalEndpoint, sender: GroqSender, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ledger = Ledger(tmp_path / "ops.duckdb", SystemClock(), flush_interval=0.05)
    await ledger.start()
    settings = Settings(models={MODEL: ROOMY_LIMITS, OTHER_MODEL: ROOMY_LIMITS}, default_model=MODEL,
                        max_retries=1, request_timeout=5.0, batch_interval=0.0)
    quick = Backoff(0.01, 0.02, rng=random.Random(7))
    scheduler = Scheduler(settings, QuotaBook(settings, SystemClock()), sender, SystemClock(), recorder=ledger,
                          retry_backoff=quick, capacity_hold=quick)
    await scheduler.start()
    errors: dict[int, BaseException] = {}

    async def refused(status: int, asked: PromptRequest, limits: ModelLimits = ROOMY_LIMITS) -> None:
        endpoint.set_limits(asked.model or MODEL, limits)
        with pytest.raises(MedopsError) as failed:  # each status has its own kind; every one is read below
            await scheduler.submit(asked)
        errors[status] = failed.value

    try:
        long_prompt = f"{MARKER} " + "chest pain radiating to the left arm " * 60
        await refused(400, request(long_prompt), replace(ROOMY_LIMITS, context_window=256))
        await refused(413, request(f"{MARKER} asks too much"), replace(ROOMY_LIMITS, tpm=150))
        endpoint.fail_next(2, 503)
        await refused(503, request(f"{MARKER} meets a server error"))
        endpoint.fail_next(8, 498)
        await refused(498, request(f"{MARKER} meets a full model"))
        # On another model: a 429 blocks its model's minute, and this one's minute holds the attempts above.
        one_a_minute = replace(ROOMY_LIMITS, rpm=1)
        endpoint.set_limits(OTHER_MODEL, one_a_minute)
        await scheduler.submit(request(f"{MARKER} is answered", model=OTHER_MODEL))
        await refused(429, request(f"{MARKER} is one too many", model=OTHER_MODEL, deadline=1.0), one_a_minute)
    finally:
        await scheduler.stop()
        await ledger.stop()
    assert endpoint.stats.too_large == 1 and endpoint.stats.bad_requests == 1 and endpoint.stats.rate_limited >= 1
    assert isinstance(errors[400], RequestRejected) and isinstance(errors[413], RequestRejected)
    assert isinstance(errors[503], UpstreamUnavailable) and isinstance(errors[498], CapacityExceeded)
    for status, error in errors.items():
        said = "".join(traceback.format_exception(error)) + repr(error.args)
        assert MARKER not in said, f"the error for HTTP {status} holds the prompt"
    assert caplog.records and not [r for r in caplog.records if MARKER in r.getMessage()]
    with duckdb.connect(str(tmp_path / "ops.duckdb"), read_only=True) as con:
        assert len(con.execute("SELECT * FROM requests").fetchall()) == 6
        for table in TABLES:
            assert MARKER not in repr(con.execute(f"SELECT * FROM {table}").fetchall()), table


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://api.example.com", "ftp://127.0.0.1/", "https://",
                                 "http://proxyuser:proxyS3cret@10.0.0.8:3128"])
def test_a_base_url_that_is_not_https_or_loopback_http_is_refused_at_start(url: str) -> None:
    with pytest.raises(ConfigError, match="GROQ_BASE_URL") as refused:
        choose_target(Settings(), {"GROQ_BASE_URL": url, "GROQ_API_KEY": "gsk_x"})
    assert "proxyS3cret" not in str(refused.value) and "proxyuser" not in str(refused.value)


def test_the_configured_base_url_is_checked_too_when_groq_is_used() -> None:
    with pytest.raises(ConfigError, match=r"setting groq_base_url = 'http://api\.groq\.com' uses plain http"):
        choose_target(Settings(groq_base_url="http://api.groq.com"), {"GROQ_API_KEY": "gsk_x"})


def test_credentials_in_the_base_url_are_never_shown() -> None:
    target = choose_target(Settings(), {"GROQ_BASE_URL": "https://proxyuser:proxyS3cret@proxy.example:8443/groq",
                                        "GROQ_API_KEY": "gsk_x"})
    assert target.base_url.startswith("https://proxyuser:proxyS3cret@")  # the client still gets them
    assert target.shown_url == "https://***@proxy.example:8443/groq"
    assert "proxyS3cret" not in repr(target) and "proxyuser" not in repr(target)


@pytest.mark.parametrize("key", ["gsk_ünïcode", "gsk two words", "gsk_\x00"])
def test_a_key_no_header_can_carry_is_refused_at_start_without_showing_it(key: str) -> None:
    with pytest.raises(ConfigError, match="GROQ_API_KEY holds characters a Groq key never has") as refused:
        choose_target(Settings(), {"GROQ_API_KEY": key})
    assert key not in str(refused.value) and "gsk" not in str(refused.value)
