"""Real `medops gateway` processes on one redis-server, driven by the real groq SDK, judged by the local
endpoint's own counts and the store's own keys: keys revoked everywhere, a client hanging up mid-stream,
a critical request at one gateway before normal ones at another, and three gateways under one 30 rpm limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import groq
import httpx
import pytest
import redis

from medops.core.gateway.keys import FRESH_FOR
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.settings.config import ModelLimits
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.gateway_processes import MODEL, GatewayProcess, Medops, gateways, medops_for
from tests.helpers.redis_server import RedisServer
from tests.helpers.waiting import wait_for

ASK = [{"role": "user", "content": "List the open follow-ups."}]


def in_flight(process: GatewayProcess) -> int:
    return int(httpx.get(f"{process.url}/healthz", timeout=10).json()["in_flight"])


def members(tmp_path: Path, count: int, endpoint: LocalEndpoint, store: RedisServer, knowledge: Path,
            limits: ModelLimits, **settings: object) -> list[Medops]:
    return [medops_for(tmp_path / f"member-{n}", endpoint.url, knowledge, limits=limits, store_url=store.url,
                       **settings) for n in range(count)]


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def test_a_key_revoked_on_one_gateway_is_refused_by_another(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path) -> None:
    limits = ModelLimits(rpm=1_000, rpd=100_000, tpm=10_000_000, tpd=100_000_000)
    with EndpointThread(LocalEndpoint({MODEL: limits})) as endpoint:
        first, second = members(tmp_path, 2, endpoint, redis_server, built_knowledge, limits)
        secret = first.add_key("triage-bot")
        with gateways([first, second], tmp_path) as (here, there):
            clients = [groq.Groq(api_key=secret, base_url=g.url, max_retries=0) for g in (here, there)]
            for client in clients:  # each gateway knows the key now
                assert client.chat.completions.create(model=MODEL, messages=ASK).choices[0].message.content
            revoked = first.run("gateway", "key", "revoke", "triage-bot")
            assert revoked.returncode == 0, revoked.stderr
            time.sleep(FRESH_FOR + 0.1)  # what a gateway read before the revocation is stale by now
            for client in clients:
                with pytest.raises(groq.AuthenticationError):
                    client.chat.completions.create(model=MODEL, messages=ASK)
                client.close()
        assert endpoint.stats.answered == 2


def test_a_client_hanging_up_mid_stream_cancels_the_upstream_request_and_leaves_nothing_in_flight(
        tmp_path: Path, redis_server: RedisServer, store: redis.Redis, built_knowledge: Path) -> None:
    limits = ModelLimits(rpm=30, rpd=14_400, tpm=1_000_000, tpd=10_000_000)
    # Groq-shaped timing, 150 times slower: the answer streams over several seconds.
    slow = LocalEndpoint({MODEL: limits}, faults=FaultModes(latency_scale=150.0))
    with EndpointThread(slow) as endpoint:
        (medops,) = members(tmp_path, 1, endpoint, redis_server, built_knowledge, limits)
        secret = medops.add_key("notes-bot", "documentation")
        with gateways([medops], tmp_path) as (process,), \
                groq.Groq(api_key=secret, base_url=process.url, max_retries=0) as client:
            stream = client.chat.completions.create(model=MODEL, messages=ASK, stream=True)
            pieces = [next(iter(stream)) for _ in range(2)]
            assert pieces[1].choices[0].delta.content  # midway: the answer has begun
            stream.close()
            assert wait_for(lambda: endpoint.stats.in_flight == 0 and in_flight(process) == 0)
            # Had the gateway read on, the endpoint would have finished its answer and counted it.
            assert (endpoint.stats.requests, endpoint.stats.answered) == (1, 0)
            (prefix,) = {key.removesuffix(f"q:{MODEL}:sum") for key in store.scan_iter(f"*q:{MODEL}:sum")}
            assert store.hlen(f"{prefix}q:{MODEL}:fly") == 0 and store.zcard(f"{prefix}q:{MODEL}:flyx") == 0
            sums = {k: int(v) for k, v in store.hgetall(f"{prefix}q:{MODEL}:sum").items()}
            assert sums.get("fr", 0) == 0 and sums.get("ft", 0) == 0
            parts = {k: int(v) for k, v in store.hgetall(f"{prefix}q:{MODEL}:part").items()}
            # Each member's part is what it settled (the request as reserved: Groq may have counted it), no more.
            assert sum(v for k, v in parts.items() if k.endswith("|1")) == sums["mr"] == 1
            assert sum(v for k, v in parts.items() if k.endswith("|3")) == sums["mt"] > 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_critical_request_at_one_gateway_is_sent_before_normal_ones_queued_at_another(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path) -> None:
    limits = ModelLimits(rpm=1, rpd=14_400, tpm=1_000_000, tpd=10_000_000)
    with EndpointThread(LocalEndpoint({MODEL: limits})) as endpoint:
        # No ageing within the test: the normal requests wait longer, and must still go after.
        urgent, calm = members(tmp_path, 2, endpoint, redis_server, built_knowledge, limits,
                               starvation_bound=600.0)
        er_key = urgent.add_key("er-bot", "triage", "normal", max_priority="critical")
        ward_key = calm.add_key("ward-bot", "documentation", "normal")
        # The gateways stop before the pool waits for its threads: the normal ones then end at once.
        with ThreadPoolExecutor(8) as pool, gateways([urgent, calm], tmp_path) as (here, there):
            def ask(process: GatewayProcess, secret: str, **headers: str) -> Any:
                with groq.Groq(api_key=secret, base_url=process.url, max_retries=0, timeout=280) as client:
                    return client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=20,
                                                          extra_headers={"X-Medops-Deadline": "240", **headers})
            ask(here, er_key)  # the minute's one request
            normal = [pool.submit(ask, there, ward_key) for _ in range(3)]
            assert wait_for(lambda: in_flight(there) == 3)
            critical = pool.submit(ask, here, er_key, **{"X-Medops-Priority": "critical"})
            done, _ = wait([critical, *normal], timeout=240, return_when=FIRST_COMPLETED)
            assert done == {critical}, [f.exception() for f in done]
            assert critical.result().choices[0].message.content
            assert endpoint.stats.requests == 2 and not any(f.done() for f in normal)
        # The gateway stopping answers the normal ones still queued with a 503 (not the next minute's slot).
        assert [_status(f) for f in normal] == [503] * 3
        assert (endpoint.stats.requests, endpoint.stats.rate_limited) == (2, 0)


def _status(future: Future[Any]) -> int | None:
    failure = future.exception(timeout=60)
    return failure.status_code if isinstance(failure, groq.APIStatusError) else None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_three_gateways_under_one_30_rpm_limit_answer_60_concurrent_sdk_requests_without_a_refusal(
        tmp_path: Path, redis_server: RedisServer, built_knowledge: Path) -> None:
    limits = ModelLimits(rpm=30, rpd=14_400, tpm=1_000_000, tpd=10_000_000)
    with EndpointThread(LocalEndpoint({MODEL: limits})) as endpoint:
        fleet = members(tmp_path, 3, endpoint, redis_server, built_knowledge, limits)
        secrets = [medops.add_key(f"agent-{n}", "triage") for n, medops in enumerate(fleet)]
        with gateways(fleet, tmp_path) as processes:
            statuses: list[int] = []
            answers = asyncio.run(_sixty(processes, secrets, statuses))
        stats = endpoint.stats
    assert len(answers) == 60 and all(a.choices[0].message.content for a in answers)
    assert statuses == [200] * 60  # no 429 ever reached a client, not even one its SDK retried
    assert (stats.requests, stats.answered, stats.rate_limited) == (60, 60, 0)
    # The endpoint's own stamps (`created`, its wall clock in whole seconds when it answered): at most 30 in
    # any 60 s, and they did take two minutes' windows. (Twice the limit at once is the point; a third minute
    # only added a minute to the suite.)
    stamps = sorted(a.created for a in answers)
    assert max(sum(1 for s in stamps if start <= s < start + 60) for start in stamps) == 30
    assert stamps[-1] - stamps[0] >= 59


async def _sixty(processes: list[GatewayProcess], secrets: list[str], statuses: list[int]) -> list[Any]:
    async def note(response: httpx.Response) -> None:
        statuses.append(response.status_code)
    clients = [groq.AsyncGroq(api_key=secret, base_url=process.url, timeout=290.0,
                              http_client=httpx.AsyncClient(event_hooks={"response": [note]}))
               for process, secret in zip(processes, secrets, strict=True)]
    try:
        return list(await asyncio.gather(*(clients[n % 3].chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"follow-up {n}"}], max_completion_tokens=50)
            for n in range(60))))
    finally:
        for client in clients:
            await client.close()
