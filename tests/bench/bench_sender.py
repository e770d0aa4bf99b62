"""Groq path speed against the in-process local endpoint (latency off), each figure beside its peer.

- one request: raw httpx POST vs the sender (AsyncGroq, raw response, header parsing)
  vs `ResourceCore.ask` at critical priority (scheduler + quota + sender); the
  reference design's batcher adds 100 ms to every request, critical ones included.
- throughput at 40 in flight: raw httpx vs the sender.

Run with `make bench`. Limits are raised so no window binds; the machine is shared,
so each figure is the median of its requests, and peers alternate rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import CHAT_PATH, LocalEndpoint
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.groq.sender import LOCAL_PLACEHOLDER_KEY, GroqSender, GroqTarget
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import ModelLimits, Settings
from medops.core.settings.paths import Locations

MODEL = "llama-3.1-8b-instant"
ROOMY = ModelLimits(rpm=1_000_000, rpd=100_000_000, tpm=1_000_000_000, tpd=10_000_000_000)
SINGLE = 300
BURST = 400
CONCURRENCY = 40
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "bench"}], "max_completion_tokens": 64}


def settings() -> Settings:
    return replace(Settings(), models=MappingProxyType({MODEL: ROOMY}), default_model=MODEL,
                   groq_concurrent=CONCURRENCY, batch_interval=0.1)


def request() -> PromptRequest:
    return PromptRequest("bench", "triage", Priority.CRITICAL, model=MODEL, max_completion_tokens=64)


async def timed(action, count: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await action()
        times.append(time.perf_counter() - start)
    return times


async def burst(action, count: int, width: int) -> float:  # type: ignore[no-untyped-def]
    gate = asyncio.Semaphore(width)

    async def one() -> None:
        async with gate:
            await action()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - start)


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered) * 1000:6.2f} ms  p95 {ordered[int(len(ordered) * 0.95)] * 1000:6.2f} ms"


def test_bench_sender_and_core_against_the_local_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        config = settings()
        endpoint = LocalEndpoint(config.models, faults=FaultModes(latency_scale=0.0))
        await endpoint.start()
        raw_client = httpx.AsyncClient(base_url=endpoint.url)
        sender = GroqSender(config, GroqTarget("local", endpoint.url, LOCAL_PLACEHOLDER_KEY, in_process=False))
        # No GROQ_API_KEY and GROQ_BASE_URL set: the core sends to this endpoint, with no simulated latency.
        monkeypatch.setenv("GROQ_BASE_URL", endpoint.url)
        core = ResourceCore(config, Locations(tmp_path / "config", tmp_path / "data"))
        await core.start()
        assert core.snapshot().endpoint.base_url == endpoint.url

        async def raw() -> None:
            (await raw_client.post(CHAT_PATH, json=BODY)).raise_for_status()

        async def via_sender() -> None:
            await sender.send(request(), timeout=10)

        async def via_core() -> None:
            await core.ask(request())

        try:
            for action in (raw, via_sender, via_core):  # warm connections and imports
                await timed(action, 20)
            raw_times: list[float] = []
            sender_times: list[float] = []
            core_times: list[float] = []
            for _ in range(3):
                raw_times += await timed(raw, SINGLE // 3)
                sender_times += await timed(via_sender, SINGLE // 3)
                core_times += await timed(via_core, SINGLE // 3)
            raw_rates = []
            gateway_rates = []
            for _ in range(2):
                raw_rates.append(await burst(raw, BURST, CONCURRENCY))
                gateway_rates.append(await burst(via_sender, BURST, CONCURRENCY))
        finally:
            await core.stop()
            await sender.close()
            await raw_client.aclose()
            await endpoint.stop()
        print()
        print(f"one request, raw httpx POST        {ms(raw_times)}")
        print(f"one request, sender (AsyncGroq)   {ms(sender_times)}")
        print(f"one critical, ResourceCore.ask     {ms(core_times)}   (reference batcher: +100 ms each)")
        print(f"{CONCURRENCY} in flight, raw httpx          {max(raw_rates):8.0f} requests/s")
        print(f"{CONCURRENCY} in flight, sender            {max(gateway_rates):8.0f} requests/s")

    asyncio.run(run())
