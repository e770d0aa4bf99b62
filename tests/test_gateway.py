"""The gateway: AsyncGroq (SDK retries off) against the real local endpoint."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from core.completions import (
    CapacityExceeded,
    PromptRequest,
    RateLimited,
    RequestRejected,
    UpstreamUnavailable,
)
from core.config import DEFAULT_MODELS, ModelLimits, Settings
from core.endpoint_faults import FaultModes
from core.gateway import LOCAL_PLACEHOLDER_KEY, Gateway, GatewayTimeout, GroqTarget, choose_target
from core.local_endpoint import LocalEndpoint

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


def make_gateway(url: str, key: str = LOCAL_PLACEHOLDER_KEY, **settings: object) -> Gateway:
    values: dict[str, object] = {"max_retries": 3, "request_timeout": 5.0} | settings
    return Gateway(Settings(**values), GroqTarget("local", url, key, in_process=False),  # type: ignore[arg-type]
                   rng=random.Random(7), backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture
async def gateway(endpoint: LocalEndpoint) -> AsyncIterator[Gateway]:
    sender = make_gateway(endpoint.url)
    yield sender
    await sender.close()


async def test_send_returns_text_usage_request_id_and_parsed_headers(gateway: Gateway) -> None:
    completion = await gateway.send(request(), timeout=10)
    assert completion.text.startswith("[medops local endpoint]")
    assert completion.model == MODEL
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
    assert completion.request_id is not None and completion.request_id.startswith("req_")
    assert completion.queue_time is not None and completion.total_time is not None
    assert completion.headers.limit_requests == LIMITS.rpd
    assert completion.headers.remaining_requests == LIMITS.rpd - 1
    assert completion.headers.remaining_tokens == LIMITS.tpm - completion.total_tokens
    assert gateway.stats.answered == 1 and gateway.pool_snapshot().completed == 1


async def test_5xx_is_retried_until_it_succeeds(endpoint: LocalEndpoint, gateway: Gateway) -> None:
    endpoint.fail_next(2, 503)
    completion = await gateway.send(request(), timeout=10)
    assert completion.text
    assert endpoint.stats.injected_errors == 2 and endpoint.stats.answered == 1
    assert (gateway.stats.retries, gateway.stats.server_errors) == (2, 2)


async def test_5xx_that_persists_ends_as_upstream_unavailable_after_max_retries(
        endpoint: LocalEndpoint, gateway: Gateway) -> None:
    endpoint.fail_next(10, 500)
    with pytest.raises(UpstreamUnavailable, match="HTTP 500 after 4 attempts"):
        await gateway.send(request(), timeout=10)
    assert endpoint.stats.requests == 4  # one attempt plus max_retries=3
    assert gateway.pool_snapshot().errors == 1


async def test_429_is_raised_for_the_scheduler_with_its_wait_and_never_retried(
        endpoint: LocalEndpoint, gateway: Gateway) -> None:
    endpoint.set_limits(MODEL, ModelLimits(rpm=1, rpd=1_000, tpm=6_000, tpd=500_000))
    await gateway.send(request(), timeout=10)
    with pytest.raises(RateLimited) as limited:
        await gateway.send(request(), timeout=10)
    assert limited.value.retry_after is not None and 55 <= limited.value.retry_after <= 60
    assert limited.value.limit is not None and limited.value.limit.dimension == "rpm"
    assert limited.value.headers.limit_requests == 1_000
    assert endpoint.stats.requests == 2 and gateway.stats.rate_limited == 1


async def test_413_is_rejected_at_once_with_what_to_do(endpoint: LocalEndpoint, gateway: Gateway) -> None:
    with pytest.raises(RequestRejected) as rejected:
        await gateway.send(request(max_completion_tokens=LIMITS.tpm), timeout=10)
    assert rejected.value.status == 413
    assert "lower max_completion_tokens" in str(rejected.value)
    assert endpoint.stats.requests == 1


async def test_unknown_model_is_rejected_as_404(endpoint: LocalEndpoint, gateway: Gateway) -> None:
    with pytest.raises(RequestRejected) as rejected:
        await gateway.send(request(model="no-such-model"), timeout=10)
    assert rejected.value.status == 404 and "does not exist" in rejected.value.reason


async def test_wrong_key_is_a_401_that_never_shows_the_key() -> None:
    endpoint = LocalEndpoint(DEFAULT_MODELS, api_key="the-right-key", faults=INSTANT)
    await endpoint.start()
    sender = make_gateway(endpoint.url, key="gsk_secret_wrong_key")
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


async def test_498_is_a_capacity_signal(endpoint: LocalEndpoint, gateway: Gateway) -> None:
    endpoint.fail_next(1, 498)
    with pytest.raises(CapacityExceeded):
        await gateway.send(request(), timeout=10)
    assert endpoint.stats.requests == 1 and gateway.stats.capacity_exceeded == 1


async def test_slow_answers_time_out_within_the_budget(endpoint: LocalEndpoint) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=30))
    sender = make_gateway(endpoint.url, request_timeout=0.2, max_retries=1)
    try:
        with pytest.raises(UpstreamUnavailable, match=r"no answer within 0\.2s after 2 attempts"):
            await sender.send(request(), timeout=5)
        assert sender.stats.timeouts == 2 and sender.pool_snapshot().timeouts == 2
        with pytest.raises(GatewayTimeout):
            await sender.send(request(), timeout=0.3)
    finally:
        await sender.close()


async def test_refused_connections_are_retried_then_reported(endpoint: LocalEndpoint) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, refuse_connections=True))
    sender = make_gateway(endpoint.url, max_retries=2)
    try:
        with pytest.raises(UpstreamUnavailable, match=r"cannot connect .* after 3 attempts"):
            await sender.send(request(), timeout=10)
        assert sender.stats.connection_errors == 3
    finally:
        await sender.close()


async def test_pool_snapshot_counts_requests_in_flight(endpoint: LocalEndpoint, gateway: Gateway) -> None:
    await endpoint.set_faults(FaultModes(latency_scale=0.0, slow_rate=1.0, slow_seconds=0.3))
    sends = [asyncio.create_task(gateway.send(request(), timeout=10)) for _ in range(3)]
    for _ in range(500):  # the endpoint holds each for 0.3 s: wait until all three arrived
        if endpoint.stats.in_flight == 3:
            break
        await asyncio.sleep(0.01)
    pool = gateway.pool_snapshot()
    assert (pool.name, pool.active, pool.capacity) == ("http", 3, Settings().http_max_connections)
    await asyncio.gather(*sends)
    assert gateway.pool_snapshot().active == 0


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
