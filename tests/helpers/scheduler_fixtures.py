"""The scheduler on the fake clock: a Groq stand-in, a recorder, settings, and the `build` fixture that makes
schedulers over either kind of quota (imported by name into the tests that use them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from medops.core.clock import FakeClock, settle
from medops.core.groq.backoff import Backoff
from medops.core.groq.quota import GroqQuota, QuotaBook, QuotaFactory
from medops.core.groq.requests import Completion, Priority, PromptRequest, PromptResult
from medops.core.groq.scheduler import Scheduler
from medops.core.ledger.records import RequestRecord
from medops.core.settings.config import ModelLimits, Settings
from tests.helpers.quota_helpers import DeferringQuota, MemoryAdmissionStore

Build = Callable[..., Awaitable[Scheduler]]
ROOMY = ModelLimits(rpm=1_000, rpd=100_000, tpm=10_000_000, tpd=100_000_000)


class FakeSender:
    """A Groq stand-in on the fake clock: takes `latency` seconds, or raises what a script says."""

    def __init__(self, clock: FakeClock, latency: float = 1.0) -> None:
        self.clock = clock
        self.latency = latency
        self.sent: list[tuple[float, PromptRequest]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.failures: dict[str, list[BaseException]] = {}
        self.completion_tokens = 10

    async def send(self, request: PromptRequest, timeout: float, attempt: object = None) -> Completion:  # noqa: ASYNC109
        self.sent.append((self.clock.monotonic(), request))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.clock.sleep(self.latency)
            failures = self.failures.get(request.request_id)
            if failures:
                raise failures.pop(0)
            return Completion(text="ok", model=request.model or "", prompt_tokens=20,
                              completion_tokens=self.completion_tokens)
        finally:
            self.in_flight -= 1

    def order(self) -> list[str]:
        return [request.request_id for _, request in self.sent]


class MemoryRecorder:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def record_request(self, record: RequestRecord) -> None:
        self.records.append(record)


def make_settings(**changes: object) -> Settings:
    values: dict[str, object] = {"models": {"x": ROOMY, "y": ROOMY}, "default_model": "x", "batch_interval": 0.1,
                                 "groq_concurrent": 10, "queue_limit": 100, "starvation_bound": 30.0}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def sender(clock: FakeClock) -> FakeSender:
    return FakeSender(clock)


@pytest.fixture
def recorder() -> MemoryRecorder:
    return MemoryRecorder()


QUOTAS: dict[str, QuotaFactory] = {"in-process": GroqQuota, "deferring": DeferringQuota}


@pytest.fixture(params=list(QUOTAS))
def quota_kind(request: pytest.FixtureRequest) -> str:
    """Every scheduler test runs against the in-process quota, which decides at once, and against a quota
    that defers every decision to an asynchronous ask (as the fleet's store does)."""
    return str(request.param)


@pytest.fixture
async def build(clock: FakeClock, sender: FakeSender, recorder: MemoryRecorder,
                quota_kind: str) -> AsyncIterator[Build]:
    made: list[Scheduler] = []

    async def _build(settings: Settings | None = None, store: MemoryAdmissionStore | None = None,
                     **backoffs: Backoff) -> Scheduler:
        settings = settings or make_settings()
        quotas = QuotaBook(settings, clock, store, build=QUOTAS[quota_kind])
        scheduler = Scheduler(settings, quotas, sender, clock, recorder, **backoffs)
        await scheduler.start()
        made.append(scheduler)
        return scheduler

    yield _build
    for scheduler in made:
        await scheduler.stop()


def req(name: str, priority: Priority = Priority.NORMAL, agent: str = "triage", **extra: object) -> PromptRequest:
    return PromptRequest("p", agent, priority=priority, request_id=name, max_completion_tokens=100,
                         **extra)  # type: ignore[arg-type]


async def submit(scheduler: Scheduler, request: PromptRequest) -> asyncio.Task[PromptResult]:
    """Submit from a task of its own and let it reach the queue before time moves."""
    task = asyncio.create_task(scheduler.submit(request))
    await settle()
    return task
