"""The local endpoint, driven by the real groq SDK (sync `Groq` and async `AsyncGroq`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import groq
import pytest

from medops.core.clock import FakeClock
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.rate_headers import parse_go_duration, parse_rate_limit_headers, parse_rate_limit_message
from medops.core.groq.wire import count_prompt_tokens
from medops.core.settings.config import DEFAULT_MODELS, ModelLimits
from tests.helpers.endpoint_thread import EndpointThread

MODEL = "llama-3.1-8b-instant"
LIMITS = DEFAULT_MODELS[MODEL]
QUESTION = [{"role": "user", "content": "Summarise the endpoint's behaviour."}]
INSTANT = FaultModes(latency_scale=0.0)


@pytest.fixture
def sync_endpoint() -> Iterator[LocalEndpoint]:
    with EndpointThread(LocalEndpoint(DEFAULT_MODELS, faults=INSTANT)) as endpoint:
        yield endpoint


@pytest.fixture
def sync_client(sync_endpoint: LocalEndpoint) -> Iterator[groq.Groq]:
    client = groq.Groq(api_key="any", base_url=sync_endpoint.url, max_retries=0)
    yield client
    client.close()


@pytest.fixture
async def endpoint(clock: FakeClock) -> AsyncIterator[LocalEndpoint]:
    local = LocalEndpoint(DEFAULT_MODELS, clock=clock, faults=INSTANT)
    await local.start()
    yield local
    await local.stop()


@pytest.fixture
async def client(endpoint: LocalEndpoint) -> AsyncIterator[groq.AsyncGroq]:
    sdk = groq.AsyncGroq(api_key="any", base_url=endpoint.url, max_retries=0)
    yield sdk
    await sdk.close()


# -- sync SDK ---------------------------------------------------------------------

def test_sync_sdk_gets_a_completion_in_groq_format(sync_client: groq.Groq) -> None:
    completion = sync_client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.choices[0].finish_reason == "stop"
    text = completion.choices[0].message.content or ""
    assert text.startswith("[medops local endpoint]") and "no medical content" in text
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens == count_prompt_tokens(QUESTION)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert None not in (usage.queue_time, usage.prompt_time, usage.completion_time, usage.total_time)
    assert completion.x_groq is not None and completion.x_groq.id.startswith("req_")


def test_sync_sdk_reads_the_day_requests_and_minute_tokens_headers(sync_client: groq.Groq) -> None:
    raw = sync_client.chat.completions.with_raw_response.create(
        model=MODEL, messages=QUESTION, max_completion_tokens=100)  # type: ignore[arg-type]
    usage = raw.parse().usage
    assert usage is not None
    headers = parse_rate_limit_headers(raw.headers)
    assert (headers.limit_requests, headers.remaining_requests) == (LIMITS.rpd, LIMITS.rpd - 1)
    assert (headers.limit_tokens, headers.remaining_tokens) == (LIMITS.tpm, LIMITS.tpm - usage.total_tokens)
    assert headers.reset_requests is not None and 86_000 < headers.reset_requests <= 86_400
    assert headers.reset_tokens is not None and 0 < headers.reset_tokens <= 60
    assert raw.headers["x-request-id"].startswith("req_")


def test_sync_sdk_streams_chunks_ending_with_usage(sync_client: groq.Groq) -> None:
    whole = sync_client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    chunks = list(sync_client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                                      stream=True))
    assert chunks[0].x_groq is not None and chunks[0].x_groq.id
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.x_groq is not None and last.x_groq.usage is not None
    assert last.x_groq.usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_sync_sdk_gets_401_for_a_wrong_key_when_a_key_is_set() -> None:
    with EndpointThread(LocalEndpoint(DEFAULT_MODELS, api_key="right-key", faults=INSTANT)) as endpoint:
        with groq.Groq(api_key="wrong-key", base_url=endpoint.url, max_retries=0) as client, \
                pytest.raises(groq.AuthenticationError) as refused:
            client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
        assert refused.value.status_code == 401
        assert "wrong-key" not in str(refused.value.body) and "right-key" not in str(refused.value.body)
        with groq.Groq(api_key="right-key", base_url=endpoint.url, max_retries=0) as client:
            assert client.chat.completions.create(model=MODEL, messages=QUESTION).choices  # type: ignore[arg-type]
        assert endpoint.stats.unauthorized == 1


# -- async SDK --------------------------------------------------------------------

async def test_429_carries_a_long_retry_after_and_names_the_day_limit(
        endpoint: LocalEndpoint, client: groq.AsyncGroq, clock: FakeClock) -> None:
    endpoint.set_limits(MODEL, ModelLimits(rpm=30, rpd=1, tpm=6_000, tpd=500_000))
    await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    await clock.advance(100)
    with pytest.raises(groq.RateLimitError) as limited:
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    headers = parse_rate_limit_headers(limited.value.response.headers)
    assert headers.retry_after == 86_300
    assert headers.remaining_requests == 0
    limit = parse_rate_limit_message(limited.value.body["error"]["message"])  # type: ignore[index]
    assert limit is not None and (limit.dimension, limit.limit, limit.used, limit.requested) == ("rpd", 1, 1, 1)
    assert limit.retry_in == pytest.approx(86_300)
    assert limited.value.body["error"]["code"] == "rate_limit_exceeded"  # type: ignore[index]
    await clock.advance(86_300)
    assert (await client.chat.completions.create(model=MODEL, messages=QUESTION)).choices  # type: ignore[arg-type]


async def test_minute_window_refuses_the_request_past_rpm_until_the_first_leaves(
        endpoint: LocalEndpoint, client: groq.AsyncGroq, clock: FakeClock) -> None:
    endpoint.set_limits(MODEL, ModelLimits(rpm=3, rpd=1_000, tpm=60_000, tpd=500_000))
    for _ in range(3):
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
        await clock.advance(10)
    with pytest.raises(groq.RateLimitError) as limited:
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    assert limited.value.response.headers["retry-after"] == "30"
    await clock.advance(30)
    assert (await client.chat.completions.create(model=MODEL, messages=QUESTION)).choices  # type: ignore[arg-type]
    assert endpoint.stats.rate_limited == 1


async def test_413_when_one_request_asks_more_than_the_minute_tokens(
        endpoint: LocalEndpoint, client: groq.AsyncGroq) -> None:
    with pytest.raises(groq.APIStatusError) as too_large:
        await client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                             max_completion_tokens=LIMITS.tpm)
    assert too_large.value.status_code == 413
    error = too_large.value.body["error"]  # type: ignore[index]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert f"Limit {LIMITS.tpm}, Requested {LIMITS.tpm + count_prompt_tokens(QUESTION)}" in error["message"]
    assert parse_rate_limit_headers(too_large.value.response.headers).remaining_tokens == LIMITS.tpm


async def test_an_injected_5xx_counts_as_a_request_but_uses_no_tokens(endpoint: LocalEndpoint,
                                                                      client: groq.AsyncGroq) -> None:
    endpoint.fail_next(2, 502)
    for failures in (1, 2):
        with pytest.raises(groq.InternalServerError) as failed:
            await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
        assert failed.value.status_code == 502
        headers = parse_rate_limit_headers(failed.value.response.headers)
        assert (headers.remaining_requests, headers.remaining_tokens) == (LIMITS.rpd - failures, LIMITS.tpm)
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    usage = (await raw.parse()).usage
    assert usage is not None
    headers = parse_rate_limit_headers(raw.headers)
    assert (headers.remaining_requests, headers.remaining_tokens) == (LIMITS.rpd - 3, LIMITS.tpm - usage.total_tokens)
    assert endpoint.stats.injected_errors == 2


async def test_an_injected_5xx_uses_up_a_request_of_the_minute_window(
        endpoint: LocalEndpoint, client: groq.AsyncGroq, clock: FakeClock) -> None:
    endpoint.set_limits(MODEL, ModelLimits(rpm=2, rpd=1_000, tpm=60_000, tpd=500_000))
    endpoint.fail_next(1, 503)
    with pytest.raises(groq.InternalServerError):
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    await clock.advance(10)
    assert (await client.chat.completions.create(model=MODEL, messages=QUESTION)).choices  # type: ignore[arg-type]
    with pytest.raises(groq.RateLimitError) as limited:
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    limit = parse_rate_limit_message(limited.value.body["error"]["message"])  # type: ignore[index]
    assert limit is not None and (limit.dimension, limit.limit, limit.used) == ("rpm", 2, 2)
    assert limited.value.response.headers["retry-after"] == "50"  # the failure leaves first, 60 s after it came
    await clock.advance(50)
    assert (await client.chat.completions.create(model=MODEL, messages=QUESTION)).choices  # type: ignore[arg-type]


async def test_a_full_window_answers_429_before_any_injected_failure(
        endpoint: LocalEndpoint, client: groq.AsyncGroq, clock: FakeClock) -> None:
    endpoint.set_limits(MODEL, ModelLimits(rpm=1, rpd=1_000, tpm=60_000, tpd=500_000))
    await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    endpoint.fail_next(1, 503)
    with pytest.raises(groq.RateLimitError):
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    assert endpoint.stats.injected_errors == 0  # refused on arrival: the failure waits for an admitted request
    await clock.advance(60)
    with pytest.raises(groq.InternalServerError) as failed:
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    assert failed.value.status_code == 503 and endpoint.stats.injected_errors == 1


async def test_error_rate_fails_every_request_at_one(endpoint: LocalEndpoint, client: groq.AsyncGroq) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, error_rate=1.0))
    with pytest.raises(groq.InternalServerError):
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]


async def test_498_when_capacity_is_exceeded(endpoint: LocalEndpoint, client: groq.AsyncGroq) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, capacity_rate=1.0))
    with pytest.raises(groq.APIStatusError) as over:
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    assert over.value.status_code == 498
    assert over.value.body["error"]["code"] == "capacity_exceeded"  # type: ignore[index]


async def test_slow_answers_time_the_client_out() -> None:
    endpoint = LocalEndpoint(DEFAULT_MODELS, faults=FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=5))
    await endpoint.start()
    try:
        async with groq.AsyncGroq(api_key="any", base_url=endpoint.url, max_retries=0, timeout=0.2) as client:
            with pytest.raises(groq.APITimeoutError):
                await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    finally:
        await endpoint.stop()


async def test_async_stream_ends_with_done_and_usage_on_the_last_chunk(client: groq.AsyncGroq) -> None:
    stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)  # type: ignore[arg-type]
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 2
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.x_groq is None or c.x_groq.usage is None for c in chunks[:-1])
    usage = chunks[-1].x_groq.usage  # type: ignore[union-attr]
    assert usage is not None and usage.prompt_tokens == count_prompt_tokens(QUESTION)


async def test_max_completion_tokens_cuts_the_reply_with_finish_reason_length(client: groq.AsyncGroq) -> None:
    completion = await client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                                      max_completion_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5


async def test_models_lists_every_configured_model(client: groq.AsyncGroq) -> None:
    listed = await client.models.list()
    assert sorted(m.id for m in listed.data) == sorted(DEFAULT_MODELS)
    assert all(m.context_window == DEFAULT_MODELS[m.id].context_window for m in listed.data)


async def test_unknown_model_is_404_and_overlong_prompt_is_400(client: groq.AsyncGroq) -> None:
    with pytest.raises(groq.NotFoundError) as missing:
        await client.chat.completions.create(model="no-such-model", messages=QUESTION)  # type: ignore[arg-type]
    assert missing.value.body["error"]["code"] == "model_not_found"  # type: ignore[index]
    huge = [{"role": "user", "content": "x" * 4 * LIMITS.context_window}]
    with pytest.raises(groq.BadRequestError) as too_long:
        await client.chat.completions.create(model=MODEL, messages=huge)  # type: ignore[arg-type]
    assert too_long.value.body["error"]["code"] == "context_length_exceeded"  # type: ignore[index]


async def test_refusing_connections_then_recovering(endpoint: LocalEndpoint, client: groq.AsyncGroq) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, refuse_connections=True))
    with pytest.raises(groq.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    async with groq.AsyncGroq(api_key="any", base_url=endpoint.url, max_retries=0) as fresh:
        with pytest.raises(groq.APIConnectionError):
            await fresh.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    await endpoint.set_faults(INSTANT)
    assert (await client.chat.completions.create(model=MODEL, messages=QUESTION)).choices  # type: ignore[arg-type]


async def test_token_reservation_is_settled_to_real_use(endpoint: LocalEndpoint, client: groq.AsyncGroq) -> None:
    raw = await client.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
        model=MODEL, messages=QUESTION, max_completion_tokens=4_000)
    usage = (await raw.parse()).usage
    remaining = parse_rate_limit_headers(raw.headers).remaining_tokens
    assert remaining == LIMITS.tpm - usage.total_tokens  # not tpm - 4000 - prompt


def test_reset_headers_are_go_durations(sync_client: groq.Groq) -> None:
    raw = sync_client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        assert parse_go_duration(raw.headers[name]) > 0
    assert "h" in raw.headers["x-ratelimit-reset-requests"]


async def test_a_client_hanging_up_mid_stream_ends_its_answer_quietly(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    import httpx

    caplog.set_level(logging.ERROR)
    slow = LocalEndpoint(DEFAULT_MODELS, faults=FaultModes(latency_scale=50.0))  # seconds of generating
    await slow.start()
    try:
        body = {"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "word " * 200}],
                "stream": True}
        async with httpx.AsyncClient() as client, client.stream(
                "POST", f"{slow.url}/openai/v1/chat/completions", json=body) as answer:
            async for _ in answer.aiter_lines():
                break  # the first piece, then hang up
        for _ in range(100):
            if slow.stats.hung_up:
                break
            await asyncio.sleep(0.05)
    finally:
        await slow.stop()
    assert slow.stats.hung_up == 1 and slow.stats.answered == 0
    assert "Error handling request" not in caplog.text
