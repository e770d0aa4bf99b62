"""A request waiting in the gateway's queue, through a real `medops gateway` and the real groq SDK.

Its deadline passing is a 429 whose `retry-after` says when the quota frees, so the SDK's own retries land
once it has; a client hanging up while it waits takes it out of the queue. The local endpoint's counts judge:
a window of rpm 2, never overrun.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import groq
import httpx
import pytest

from medops.core.groq.local.server import LocalEndpoint
from medops.core.settings.config import ModelLimits
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.gateway_processes import MODEL, GatewayProcess, gateway, medops_for

LIMITS = ModelLimits(rpm=2, rpd=14_400, tpm=1_000_000, tpd=10_000_000)
ASK = [{"role": "user", "content": "Summarise the ward round."}]


@pytest.fixture
def running(tmp_path: Path, built_knowledge: Path) -> Iterator[tuple[LocalEndpoint, GatewayProcess, str]]:
    with EndpointThread(LocalEndpoint({MODEL: LIMITS})) as endpoint:
        medops = medops_for(tmp_path, endpoint.url, built_knowledge, limits=LIMITS)
        secret = medops.add_key("ward-bot", "documentation", "normal")
        with gateway(medops, tmp_path / "gateway") as process:
            yield endpoint, process, secret


def fill_the_window(process: GatewayProcess, secret: str) -> None:
    with groq.Groq(api_key=secret, base_url=process.url, max_retries=0) as client:
        for _ in range(LIMITS.rpm):
            client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=20)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_deadline_passing_is_a_429_the_sdk_honours_and_its_own_retry_succeeds_once_the_window_frees(
        running: tuple[LocalEndpoint, GatewayProcess, str]) -> None:
    endpoint, process, secret = running
    fill_the_window(process, secret)
    seen: list[tuple[float, int, httpx.Headers]] = []

    def note(response: httpx.Response) -> None:
        seen.append((time.monotonic(), response.status_code, response.headers))
    hooks = httpx.Client(event_hooks={"response": [note]})
    # The SDK's own read timeout (5 s) is the deadline, less a margin: it waits in the queue that long.
    with groq.Groq(api_key=secret, base_url=process.url, timeout=5.0, http_client=hooks) as client:
        answer = client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=20)
    assert answer.choices[0].message.content
    statuses = [status for _, status, _ in seen]
    assert statuses[0] == 429 and statuses[-1] == 200 and statuses.count(200) == 1, statuses
    refused_at, _, refusal = seen[0]
    retry_after = float(refusal["retry-after-ms"]) / 1000
    assert 30 < retry_after <= 60 and int(refusal["retry-after"]) == -(-int(refusal["retry-after-ms"]) // 1000)
    assert "x-should-retry" not in refusal and refusal["x-ratelimit-limit-requests"] == str(LIMITS.rpd)
    assert seen[1][0] - refused_at >= retry_after  # the SDK waited as told before it asked again
    # The endpoint's own count: the two that filled the window and the one the retry sent, none refused.
    assert (endpoint.stats.requests, endpoint.stats.answered, endpoint.stats.rate_limited) == (3, 3, 0)


@pytest.mark.timeout(120)
def test_a_client_hanging_up_while_queued_takes_its_request_out_of_the_queue(
        running: tuple[LocalEndpoint, GatewayProcess, str]) -> None:
    endpoint, process, secret = running
    fill_the_window(process, secret)
    with groq.Groq(api_key=secret, base_url=process.url, max_retries=0, timeout=1.5) as client, \
            pytest.raises(groq.APITimeoutError):
        client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=20,
                                       extra_headers={"X-Medops-Deadline": "50"})
    # Well before the window frees (a minute after it filled), nothing of it is left in the gateway.
    hung_up = time.monotonic()
    while (in_flight := httpx.get(f"{process.url}/healthz", timeout=10).json()["in_flight"]) and \
            time.monotonic() - hung_up < 20:
        time.sleep(0.1)
    assert in_flight == 0, "the gateway still holds the request its client hung up on"
    assert endpoint.stats.requests == LIMITS.rpm
