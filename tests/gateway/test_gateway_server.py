"""The gateway's HTTP face: keys, priorities and deadlines, Groq-shaped answers and errors, streams, bounds.

A scripted core answers (tests/helpers/gateway_fakes.py); the end-to-end tests use the real one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import orjson
import pytest

from medops.core.clock import SystemClock
from medops.core.gateway.bounds import Bounds
from medops.core.gateway.key_file import FileKeyBook
from medops.core.gateway.keys import digest, new_key, new_secret
from medops.core.gateway.server import GatewayServer
from medops.core.groq.errors import RequestRejected, UpstreamUnavailable
from medops.core.groq.quota import QuotaExhausted
from medops.core.groq.requests import Priority
from medops.core.groq.scheduler import DeadlineExceeded
from medops.core.settings.paths import Locations
from medops.core.snapshot import EndpointInfo, EndpointKind
from tests.helpers.gateway_fakes import (
    MODEL,
    FakeCompletion,
    FakeCore,
    FakePrompt,
    FakeResult,
    FakeStart,
    fake_from_body,
    windows,
)
from tests.helpers.waiting import eventually

CHAT = "/openai/v1/chat/completions"
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
INVALID_KEY = {"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}}


class Gateway:
    def __init__(self, server: GatewayServer, core: FakeCore, secret: str) -> None:
        self.server, self.core, self.secret = server, core, secret
        self.client = httpx.AsyncClient(base_url=server.url, timeout=20)

    def auth(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}", **extra}

    async def chat(self, body: object = HELLO, **headers: str) -> httpx.Response:
        return await self.client.post(CHAT, json=body, headers=self.auth(**headers))


async def open_gateway(locations: Locations, monkeypatch: pytest.MonkeyPatch, max_priority: str = "high",
                       **options: object) -> Gateway:
    fake_from_body(monkeypatch)
    keys = FileKeyBook(locations.data_dir, SystemClock())
    secret = new_secret()
    await keys.add(new_key("triage-bot", "triage", "normal", max_priority, [MODEL], 0.0), digest(secret))
    core = FakeCore()
    server = GatewayServer(core, keys, port=0, **options)  # type: ignore[arg-type]
    await server.start()
    return Gateway(server, core, secret)


@pytest.fixture
async def gateway(locations: Locations, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    running = await open_gateway(locations, monkeypatch)
    yield running
    await running.client.aclose()
    await running.server.stop(grace=0.1)


# -- keys -----------------------------------------------------------------------------------------------------


async def test_no_key_or_a_wrong_one_is_a_groq_shaped_401(gateway: Gateway) -> None:
    missing = await gateway.client.post(CHAT, json=HELLO)
    wrong = await gateway.client.post(CHAT, json=HELLO, headers={"Authorization": f"Bearer {new_secret()}"})
    assert (missing.status_code, missing.json()) == (401, INVALID_KEY)
    assert (wrong.status_code, wrong.json()) == (401, INVALID_KEY)
    assert (await gateway.client.get("/openai/v1/models")).status_code == 401
    assert gateway.core.asked == []


async def test_a_wrong_key_many_times_is_refused_each_time_logged_once_and_never_echoed(
        gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    tries = [new_secret() for _ in range(300)]
    with caplog.at_level(logging.WARNING, logger="medops.gateway"):
        answers = await asyncio.gather(*(gateway.client.post(CHAT, json=HELLO, headers={
            "Authorization": f"Bearer {secret}"}) for secret in tries))
    assert all(a.status_code == 401 for a in answers)
    assert len([r for r in caplog.records if "wrong one" in r.getMessage()]) == 1
    assert not any(secret in caplog.text for secret in tries)
    assert (await gateway.chat()).status_code == 200  # the right key still works meanwhile
    assert gateway.server.stats.snapshot().unauthorized == 300


async def test_the_key_chooses_agent_priority_and_client_and_a_header_raises_priority_up_to_its_maximum(
        gateway: Gateway) -> None:
    await gateway.chat()
    await gateway.chat(**{"X-Medops-Priority": "critical"})  # the key's maximum is high
    plain, raised = gateway.core.asked
    assert (plain.agent, plain.client, plain.priority) == ("triage", "triage-bot", Priority.NORMAL)
    assert raised.priority is Priority.HIGH
    bad = await gateway.chat(**{"X-Medops-Priority": "urgent!!"})
    assert bad.status_code == 400 and "critical, high or normal" in bad.json()["error"]["message"]


async def test_the_deadline_is_the_header_else_the_sdks_read_timeout_less_a_margin_else_request_timeout(
        gateway: Gateway) -> None:
    await gateway.chat(**{"X-Medops-Deadline": "12.5"})
    await gateway.chat(**{"x-stainless-read-timeout": "60"})
    await gateway.chat()
    assert [p.deadline for p in gateway.core.asked] == [12.5, 55.0, gateway.core.settings.request_timeout]
    assert (await gateway.chat(**{"X-Medops-Deadline": "-1"})).status_code == 400


async def test_a_model_the_key_may_not_use_is_refused_before_the_core(gateway: Gateway) -> None:
    answer = await gateway.chat({**HELLO, "model": "llama-3.3-70b-versatile"})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "model_not_allowed"
    assert gateway.core.asked == []


async def test_models_lists_the_models_the_key_may_use_and_healthz_needs_no_key(gateway: Gateway) -> None:
    models = await gateway.client.get("/openai/v1/models", headers=gateway.auth())
    assert [m["id"] for m in models.json()["data"]] == [MODEL]
    assert (await gateway.client.get("/healthz")).json()["status"] == "ok"
    unknown = await gateway.client.get("/openai/v1/embeddings", headers=gateway.auth())
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"


@pytest.mark.parametrize(("kind", "owner"), [("groq", "Groq"), ("local", "medops local endpoint")])
async def test_models_are_owned_by_whoever_the_core_sends_to(gateway: Gateway, kind: EndpointKind,
                                                              owner: str) -> None:
    gateway.core.state = replace(windows(), endpoint=EndpointInfo(kind=kind))
    models = await gateway.client.get("/openai/v1/models", headers=gateway.auth())
    assert {m["owned_by"] for m in models.json()["data"]} == {owner}


# -- answers --------------------------------------------------------------------------------------------------


async def test_an_answer_is_groqs_body_with_groqs_and_medops_headers(gateway: Gateway) -> None:
    answer = await gateway.chat()
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "hello"
    assert answer.headers["x-medops-request-id"] == gateway.core.asked[0].request_id
    assert (answer.headers["x-medops-queue-wait"], answer.headers["x-medops-attempts"]) == ("0.250", "1")
    assert answer.headers["x-ratelimit-remaining-requests"] == "14399"
    assert answer.headers["x-ratelimit-limit-tokens"] == "6000"
    assert answer.headers["x-request-id"] == "req_fake"
    (row,) = gateway.server.stats.snapshot().keys
    assert (row.name, row.requests, row.in_flight, row.queued, row.queue_wait_p50) == ("triage-bot", 1, 0, 1, 0.25)


async def test_a_request_counts_as_queued_only_when_it_waited_beyond_its_batching_window(
        locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await open_gateway(locations, monkeypatch, max_priority="critical")
    # batch_interval is 0.1 s: a normal or high request spends up to that in its batch; a critical one none.
    waits = {Priority.NORMAL: 0.12, Priority.HIGH: 0.4, Priority.CRITICAL: 0.1}

    async def waited(prompt: FakePrompt) -> FakeResult:
        return FakeResult(FakeCompletion({}), queue_wait=waits[prompt.priority])
    gateway.core.answer = waited
    try:
        await gateway.chat()
        assert gateway.server.stats.snapshot().keys[0].queued == 0
        await gateway.chat(**{"X-Medops-Priority": "high"})
        assert gateway.server.stats.snapshot().keys[0].queued == 1
        await gateway.chat(**{"X-Medops-Priority": "critical"})
        assert gateway.server.stats.snapshot().keys[0].queued == 2
    finally:
        await gateway.client.aclose()
        await gateway.server.stop(grace=0.1)


async def test_a_stream_passes_each_chunk_through_as_sse_and_ends_with_done(gateway: Gateway) -> None:
    chunks = [orjson.dumps({"choices": [{"delta": {"content": word}}]}) for word in ("a", "b", "c")]

    async def stream(prompt: FakePrompt) -> FakeResult:
        assert prompt.on_chunk is not None
        for chunk in chunks:
            await prompt.on_chunk(chunk, FakeStart(2, 1.5))
        return FakeResult(FakeCompletion({}), 1.5, 2)
    gateway.core.answer = stream
    answer = await gateway.chat({**HELLO, "stream": True})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert (answer.headers["x-medops-attempts"], answer.headers["x-medops-queue-wait"]) == ("2", "1.500")
    assert "x-ratelimit-remaining-requests" in answer.headers and "x-ratelimit-limit-tokens" in answer.headers
    assert answer.content == b"".join(b"data: " + c + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


async def test_a_stream_failing_midway_ends_with_groqs_error_event_and_before_any_chunk_with_json(
        gateway: Gateway) -> None:
    async def midway(prompt: FakePrompt) -> FakeResult:
        assert prompt.on_chunk is not None
        await prompt.on_chunk(b'{"choices":[]}', FakeStart(1, 0.0))
        raise UpstreamUnavailable("Groq failed after 1 attempt (HTTP 500)", status=500)
    gateway.core.answer = midway
    answer = await gateway.chat({**HELLO, "stream": True})
    first, event, rest = answer.content.split(b"\n\n")
    assert (answer.status_code, first, rest) == (200, b'data: {"choices":[]}', b"")
    assert orjson.loads(event.removeprefix(b"data: ")) == {"error": {
        "message": "Groq failed after 1 attempt (HTTP 500)", "type": "internal_server_error",
        "code": "upstream_unavailable"}}

    async def before(prompt: FakePrompt) -> FakeResult:
        raise RequestRejected(400, "bad tool")
    gateway.core.answer = before
    answer = await gateway.chat({**HELLO, "stream": True})
    assert answer.status_code == 400 and answer.json()["error"]["message"] == "bad tool"


async def test_a_deadline_passing_in_the_queue_is_a_429_retrying_when_the_quota_frees(gateway: Gateway) -> None:
    async def late(prompt: FakePrompt) -> FakeResult:
        raise DeadlineExceeded("request abc waited 5 s, past its deadline")
    gateway.core.answer = late
    gateway.core.state = windows(rpm_used=30)  # the minute's requests are spent; the window frees in 42 s
    answer = await gateway.chat()
    assert answer.status_code == 429 and answer.json()["error"]["code"] == "rate_limit_exceeded"
    assert (answer.headers["retry-after"], answer.headers["retry-after-ms"]) == ("42", "42000")
    assert "x-should-retry" not in answer.headers
    assert gateway.server.stats.snapshot().keys[0].refused_at_deadline == 1


async def test_a_spent_day_tells_the_sdk_not_to_retry(gateway: Gateway) -> None:
    async def spent(prompt: FakePrompt) -> FakeResult:
        raise QuotaExhausted("the day's requests are spent", 3_600.0)
    gateway.core.answer = spent
    gateway.core.state = windows(rpd_used=14_400)
    answer = await gateway.chat()
    assert answer.status_code == 429
    assert (answer.headers["x-should-retry"], answer.headers["retry-after"]) == ("false", "3600")


async def test_groqs_own_refusal_passes_through_with_its_status_and_body(gateway: Gateway) -> None:
    body = {"error": {"message": "tool_call_id is missing", "type": "invalid_request_error", "param": "messages"}}

    async def refused(prompt: FakePrompt) -> FakeResult:
        exc = RequestRejected(400, "tool_call_id is missing")
        exc.body = body  # type: ignore[attr-defined]  # issue 24's RequestRejected carries Groq's body
        raise exc
    gateway.core.answer = refused
    answer = await gateway.chat()
    assert (answer.status_code, answer.json()) == (400, body)


async def test_a_keys_in_flight_cap_refuses_more_with_a_clear_429(
        locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await open_gateway(locations, monkeypatch, key_in_flight=2)
    release = asyncio.Event()

    async def held(prompt: FakePrompt) -> FakeResult:
        await release.wait()
        return FakeResult(FakeCompletion({}))
    gateway.core.answer = held
    try:
        first = [asyncio.create_task(gateway.chat()) for _ in range(2)]
        assert await eventually(lambda: gateway.server.stats.in_flight == 2)
        third = await gateway.chat()
        assert third.status_code == 429 and "2 requests in flight, its cap" in third.json()["error"]["message"]
        release.set()
        assert [(await t).status_code for t in first] == [200, 200]
    finally:
        await gateway.client.aclose()
        await gateway.server.stop(grace=0.1)


async def test_requests_still_waiting_when_the_gateway_stops_get_a_503_and_leave_the_core(
        locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await open_gateway(locations, monkeypatch)
    cancelled: list[str] = []

    async def queued(prompt: FakePrompt) -> FakeResult:
        try:
            await asyncio.Event().wait()  # never admitted
        except asyncio.CancelledError:
            cancelled.append(prompt.request_id)
            raise
        raise AssertionError("unreachable")
    gateway.core.answer = queued
    try:
        waiting = asyncio.create_task(gateway.chat())
        assert await eventually(lambda: gateway.server.stats.in_flight == 1)
        await gateway.server.stop(grace=0.2)
        answer = await waiting
        assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
        assert answer.json()["error"]["code"] == "server_stopping"
        assert cancelled == [gateway.core.asked[0].request_id] and gateway.server.stats.in_flight == 0
    finally:
        await gateway.client.aclose()


# -- bounds ---------------------------------------------------------------------------------------------------


async def test_a_huge_body_is_a_413_saying_the_limit(locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await open_gateway(locations, monkeypatch, bounds=Bounds(max_body=100_000))
    try:
        huge = {**HELLO, "messages": [{"role": "user", "content": "x" * 200_000}]}
        answer = await gateway.chat(huge)
        assert answer.status_code == 413 and "at most 100,000 bytes" in answer.json()["error"]["message"]
        async def unsized() -> AsyncIterator[bytes]:  # no Content-Length: cut off as it arrives
            yield b"{" + b" " * 150_000 + b"}"
        chunked = await gateway.client.post(CHAT, content=unsized(), headers=gateway.auth())
        assert chunked.status_code == 413
        assert gateway.core.asked == []
    finally:
        await gateway.client.aclose()
        await gateway.server.stop(grace=0.1)


async def test_deep_json_is_a_400_not_a_500(gateway: Gateway) -> None:
    for depth in (100, 100_000):
        body = b'{"model": "' + MODEL.encode() + b'", "messages": ' + b"[" * depth + b"]" * depth + b"}"
        answer = await gateway.client.post(CHAT, content=body, headers=gateway.auth())
        assert answer.status_code == 400 and "nested more than 64 levels" in answer.json()["error"]["message"]
    assert gateway.core.asked == []


async def test_a_slow_client_is_cut_off_for_its_head_and_answered_408_for_its_body(
        locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await open_gateway(locations, monkeypatch, bounds=Bounds(body_timeout=0.3, head_timeout=0.5))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
        writer.write(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the gateway
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
        writer.write(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     gateway.secret.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        assert (await asyncio.wait_for(reader.read(1024), 10)).startswith(b"HTTP/1.1 408")
        writer.close()
    finally:
        await gateway.client.aclose()
        await gateway.server.stop(grace=0.1)


async def test_500_idle_connections_meet_the_cap_with_a_clear_503_and_the_gateway_serves_again_after(
        locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = await open_gateway(locations, monkeypatch, max_connections=100)
    try:
        idle = [await asyncio.open_connection("127.0.0.1", gateway.server.port) for _ in range(500)]
        refused = [await asyncio.wait_for(reader.read(), 10) for reader, _ in idle[100:]]
        assert all(r.startswith(b"HTTP/1.1 503") and b"Too many open connections" in r for r in refused)
        assert gateway.server.stats.snapshot().refused_connections == 400
        assert gateway.server.stats.snapshot().clients == 100
        for _, writer in idle:
            writer.close()
        assert await eventually(lambda: gateway.server.open_connections == 0)
        assert (await gateway.chat()).status_code == 200
    finally:
        await gateway.client.aclose()
        await gateway.server.stop(grace=0.1)


def test_listening_beyond_loopback_must_be_asked_for() -> None:
    with pytest.raises(Exception, match=r"loopback only, not 0\.0\.0\.0.*--allow-remote"):
        GatewayServer(FakeCore(), None, host="0.0.0.0")  # type: ignore[arg-type]
    assert GatewayServer(FakeCore(), None, host="0.0.0.0", allow_remote=True)  # type: ignore[arg-type]


async def test_the_gateway_stops_even_when_a_cancel_lands_inside_a_key_use_flush_that_keeps_the_error(
        locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    # A flush keeps a store error for the next one; redis-py can turn a cancel that lands inside its command into
    # such an error, and the flush loop went round again: `stop` then waited for ever.
    import medops.core.gateway.server as server_module

    monkeypatch.setattr(server_module, "LAST_USED_INTERVAL", 0.01)
    running = await open_gateway(locations, monkeypatch)
    flushing = asyncio.Event()

    async def flush_keeping_the_error() -> None:
        if asyncio.current_task() is not running.server._flush_task:
            return  # the last flush, at stop
        flushing.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return  # what a flush does with a store error: kept for later, the loop goes on

    monkeypatch.setattr(running.server._keys, "flush", flush_keeping_the_error)
    await asyncio.wait_for(flushing.wait(), 30)
    await running.client.aclose()
    await asyncio.wait_for(running.server.stop(grace=0.1), 30)  # ends, where it hung
