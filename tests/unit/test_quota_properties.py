"""Property: whatever arrives, however large, cancelled, rate-limited or failing, no window is ever overrun.

Overrun is judged twice: by the admissions medops recorded, and as the server counts them, at each
attempt's arrival, which comes some random time after it was sent (a slow connection) and before
its answer returns. The server counts every attempt that reaches it, 5xx and 498 included (with
its whole reservation), so the scheduler's retries must each pass the quota."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medops.core.clock import FakeClock, settle
from medops.core.errors import MedopsError
from medops.core.groq.errors import CapacityExceeded, NeverSent, RateLimited, UpstreamUnavailable
from medops.core.groq.quota import GroqQuota, QuotaBook, QuotaFactory
from medops.core.groq.rate_headers import DIMENSIONS, LimitExceeded, RateLimitHeaders
from medops.core.groq.requests import AGENTS, Completion, Priority, PromptRequest
from medops.core.groq.scheduler import Scheduler
from medops.core.groq.token_estimate import estimate_prompt_tokens
from medops.core.settings.config import ModelLimits, Settings
from tests.helpers.quota_helpers import DeferringQuota, MemoryAdmissionStore

Outcome = tuple[MemoryAdmissionStore, list["Arrived"], list[BaseException | object], int]
SPANS = {"rpm": 60.0, "tpm": 60.0, "rpd": 86_400.0, "tpd": 86_400.0}


@dataclass(frozen=True)
class Arrival:
    at: float
    prompt_chars: int
    max_completion_tokens: int
    priority: Priority
    model: str
    deadline: float | None
    fail_fast: bool
    cancel_after: float | None


arrivals = st.builds(
    Arrival,
    at=st.floats(0, 180),
    prompt_chars=st.integers(0, 900),
    max_completion_tokens=st.integers(1, 700),
    priority=st.sampled_from(list(Priority)),
    model=st.sampled_from(["x", "y"]),
    deadline=st.none() | st.floats(0.5, 400),
    fail_fast=st.sampled_from([False, False, False, True]),
    cancel_after=st.none() | st.floats(0, 30),
)
limits = st.builds(ModelLimits, rpm=st.integers(1, 6), rpd=st.integers(2, 30), tpm=st.integers(1_100, 4_000),
                   tpd=st.integers(2_000, 30_000))


@dataclass
class Arrived:
    """One request as the server counts it: stamped on arrival, holding its reservation until answered."""

    model: str
    at: float
    reserved: int
    used: int = 0
    answered_at: float = math.inf  # never answered (cancelled after it arrived): it keeps the reservation

    def tokens_at(self, when: float) -> int:
        return self.used if self.answered_at <= when else self.reserved


class ChaoticSender:
    """Reaches the server after a random delay (sometimes longer than the minute), answers after another,
    with usage within the reservation, or a 429, a 5xx, a 498, or fresh headers; now and then the
    connection fails before reaching it. Logs arrivals as the server sees them."""

    def __init__(self, clock: FakeClock, rng: random.Random) -> None:
        self.clock = clock
        self.rng = rng
        self.arrivals: list[Arrived] = []

    async def send(self, request: PromptRequest, timeout: float, attempt: object = None) -> Completion:  # noqa: ASYNC109
        rng = self.rng
        slow = rng.random() < 0.1  # now and then a flight longer than the whole minute window
        await self.clock.sleep(rng.uniform(0.0, 90.0 if slow else 6.0))
        if rng.random() < 0.05:  # never reached the server: nothing counted there, its quota given back
            raise NeverSent("cannot connect (ConnectError) from test", reason="cannot connect")
        arrived = Arrived(request.model or "", self.clock.monotonic(),
                          estimate_prompt_tokens(request.prompt) + request.max_completion_tokens)
        self.arrivals.append(arrived)
        await self.clock.sleep(rng.uniform(0.0, 90.0 if slow else 4.0))
        arrived.answered_at = self.clock.monotonic()
        roll = rng.random()
        if roll < 0.15:
            dimension = rng.choice(DIMENSIONS)
            retry = rng.uniform(0.1, 120.0)
            limit = LimitExceeded(dimension, 10**9, 0, 1, retry) if rng.random() < 0.7 else None
            raise RateLimited(retry if rng.random() < 0.8 else None, limit)
        if roll < 0.30:  # counted by the server as it arrived, whole reservation and all
            arrived.used = arrived.reserved
            if roll < 0.25:
                raise UpstreamUnavailable("server error HTTP 503 from test", reason="server error HTTP 503",
                                          status=503)
            raise CapacityExceeded("test is over capacity for this model (HTTP 498)")
        headers = RateLimitHeaders()
        if roll < 0.45:  # the server saw other clients' use (or less than we think)
            headers = RateLimitHeaders(remaining_requests=rng.randint(0, 30), reset_requests=rng.uniform(0, 600),
                                       remaining_tokens=rng.randint(0, 4_000), reset_tokens=rng.uniform(0, 60))
        prompt_tokens = rng.randint(0, estimate_prompt_tokens(request.prompt))
        completion_tokens = rng.randint(0, request.max_completion_tokens)
        arrived.used = prompt_tokens + completion_tokens
        return Completion("ok", request.model or "", prompt_tokens, completion_tokens, headers=headers)


def overruns(rows: list[tuple[str, float, int, int]], model: str, model_limits: ModelLimits) -> list[str]:
    """Replay the store: at each admission, what every window held (settlements applied as they happened)."""
    held: dict[float, list[int]] = {}  # admission wall time -> [requests, tokens] as currently counted
    problems = []
    for row_model, at, requests, tokens in rows:
        if row_model != model:
            continue
        amounts = held.setdefault(at, [0, 0])
        amounts[0] += requests
        amounts[1] += tokens
        if requests <= 0:
            continue  # a settlement or release only ever lowers what is counted
        for name, limit in (("rpm", model_limits.rpm), ("rpd", model_limits.rpd), ("tpm", model_limits.tpm),
                            ("tpd", model_limits.tpd)):
            index = 0 if name.startswith("r") else 1
            total = sum(v[index] for when, v in held.items() if when <= at < when + SPANS[name])
            if total > limit:
                problems.append(f"{model} {name}: {total} > {limit} at {at}")
    return problems


def server_overruns(arrivals: list[Arrived], model: str, model_limits: ModelLimits) -> list[str]:
    """At each arrival, what the server's windows hold: arrivals in the last span, reserved until answered."""
    ours = [a for a in arrivals if a.model == model]
    problems = []
    for arrival in ours:
        for name, limit in (("rpm", model_limits.rpm), ("rpd", model_limits.rpd), ("tpm", model_limits.tpm),
                            ("tpd", model_limits.tpd)):
            held = [a for a in ours if a.at <= arrival.at < a.at + SPANS[name]]
            total = len(held) if name.startswith("r") else sum(a.tokens_at(arrival.at) for a in held)
            if total > limit:
                problems.append(f"server {model} {name}: {total} > {limit} at {arrival.at}")
    return problems


async def scenario(plan: list[Arrival], model_limits: dict[str, ModelLimits], concurrency: int,
                   rng: random.Random, quota: QuotaFactory) -> Outcome:
    clock = FakeClock()
    store = MemoryAdmissionStore()
    config = Settings(models=model_limits, default_model="x", groq_concurrent=concurrency, batch_interval=0.1,
                      starvation_bound=20.0, queue_limit=1_000)
    sender = ChaoticSender(clock, rng)
    book = QuotaBook(config, clock, store, build=quota)
    scheduler = Scheduler(config, book, sender, clock)
    await scheduler.start()
    tasks: list[asyncio.Task[object]] = []
    cancellers: list[asyncio.Task[None]] = []
    events: list[tuple[float, int, Arrival]] = []
    for number, arrival in enumerate(plan):
        events.append((arrival.at, number, arrival))
    events.sort(key=lambda e: (e[0], e[1]))
    start = clock.monotonic()
    for at, number, arrival in events:
        await clock.advance(max(0.0, start + at - clock.monotonic()))
        request = PromptRequest("p" * arrival.prompt_chars, AGENTS[number % 3], arrival.priority,
                                arrival.model, arrival.max_completion_tokens, arrival.deadline, arrival.fail_fast,
                                request_id=str(number))
        tasks.append(asyncio.create_task(scheduler.submit(request)))
        if arrival.cancel_after is not None:
            cancellers.append(asyncio.create_task(_cancel_later(clock, scheduler, str(number), arrival.cancel_after)))
        await settle()  # both reach the scheduler and the clock before time moves on
    await clock.advance(2 * 86_400.0)
    await scheduler.stop()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*cancellers)
    return store, sender.arrivals, outcomes, sum(quota.in_flight for quota in book.models.values())


async def _cancel_later(clock: FakeClock, scheduler: Scheduler, request_id: str, after: float) -> None:
    await clock.sleep(after)
    scheduler.cancel(request_id)


async def watchdog(run: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Turn a deadlock (nothing left to run, fake time frozen) into a failing example, not a hung suite."""
    return await asyncio.wait_for(run, timeout=30)


@pytest.mark.parametrize("quota", [GroqQuota, DeferringQuota], ids=["in-process", "deferring"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(arrivals, min_size=1, max_size=30), limits_x=limits, limits_y=limits,
       concurrency=st.integers(1, 5), seed=st.integers(0, 2**32))
def test_no_window_is_ever_overrun_and_every_caller_hears_back(plan: list[Arrival], limits_x: ModelLimits,
                                                                limits_y: ModelLimits, concurrency: int,
                                                                seed: int, quota: QuotaFactory) -> None:
    model_limits = {"x": limits_x, "y": limits_y}
    store, arrivals, outcomes, left_in_flight = asyncio.run(watchdog(scenario(plan, model_limits, concurrency,
                                                                random.Random(seed), quota)))
    problems = [p for model, lim in model_limits.items()
                for p in overruns(store.rows, model, lim) + server_overruns(arrivals, model, lim)]
    assert problems == []
    assert left_in_flight == 0  # every admission was settled or released: none holds room for ever
    # Every caller got a result or a medops error saying why not; none was left hanging.
    assert len(outcomes) == len(plan)
    for outcome in outcomes:
        assert not isinstance(outcome, BaseException) or isinstance(outcome, MedopsError), repr(outcome)
