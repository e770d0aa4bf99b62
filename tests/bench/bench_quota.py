"""Groq quota and scheduler beside the reference design and aiolimiter. Run with `make bench`.

1. Saturated run: 40 callers against 30 requests/min for 10 minutes of fake time, each
   request answered 1 s after it is sent. The largest count admitted in any 60 s span
   (must be at most 30) and utilisation (goal at least 99% of 300), for medops' scheduler
   and quota and for the reference design's GroqResourceManager, re-implemented here on
   the same fake clock. medops counts a request until a minute after its answer (Groq
   stamps it on arrival, somewhere in between), so in steady state it admits 30 per 61 s.
2. Uncontended admission decisions per second: GroqQuota beside aiolimiter's AsyncLimiter
   (goal: at least as fast), GroqQuota again with a full day window (14,400 admissions
   held) to show a decision does not grow with the window, a whole admission (decision
   plus settle), and in steady state (every admission settles and expires one from each
   window, as at a model's full daily rate).
3. Scheduling overhead of a lone critical request (submit to answer, with a sender that
   answers at once), p99 (goal under 1 ms), beside the reference GroqBatchOptimizer's.
4. The saturated run again with a share of attempts answered 5xx, counted as Groq counts
   them (every attempt that reaches it): medops' scheduler retrying through the quota (each
   attempt its own admission) beside the same scheduler in front of a sender that retries
   inside one admission, as the gateway used to.

The machine is shared, so speed figures are the best of several alternating rounds.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiolimiter import AsyncLimiter

from medops.core.clock import FakeClock, SystemClock, settle
from medops.core.groq.backoff import Backoff
from medops.core.groq.errors import UpstreamUnavailable
from medops.core.groq.quota import GroqQuota, QuotaBook
from medops.core.groq.requests import AGENTS, Completion, Priority, PromptRequest
from medops.core.groq.scheduler import RETRY_BACKOFF, Scheduler
from medops.core.settings.config import DEFAULT_MODELS, ModelLimits, Settings
from tests.helpers.quota_helpers import acquire as wait_and_admit
from tests.helpers.quota_helpers import max_in_any_span

MODEL = "llama-3.1-8b-instant"  # 30 rpm, 14,400 rpd, 6,000 tpm, 500,000 tpd
CALLERS = 40
RUN_SECONDS = 600.0
SERVICE_SECONDS = 1.0  # how long Groq takes to answer, in fake time
ROUNDS = 5
DECISIONS = 100_000
DAY_SECONDS = 86_400.0
LONE_REQUESTS = 2_000
REFERENCE_LONE_REQUESTS = 30


# --- the reference design, on an injectable clock ------------------------------------------------

class ReferenceGroqResourceManager:
    """The reference GroqResourceManager, behaviour for behaviour; datetime.now()/asyncio.sleep
    replaced by the bench's clock so it runs on the same fake time as medops."""

    def __init__(self, clock: FakeClock, rpm_limit: int = 30, rpd_limit: int = 7000) -> None:
        self.clock = clock
        self.rpm_limit = rpm_limit
        self.rpd_limit = rpd_limit
        self.minute_window: deque[float] = deque(maxlen=rpm_limit)
        self.day_window: deque[float] = deque(maxlen=rpd_limit)
        self.semaphore = asyncio.Semaphore(rpm_limit // 2)

    async def acquire(self) -> None:
        async with self.semaphore:
            now = self.clock.monotonic()
            self._cleanup_windows(now)
            if len(self.minute_window) >= self.rpm_limit:
                sleep_time = 60 - (now - self.minute_window[0])
                await self.clock.sleep(sleep_time)  # ...then admits without checking again
            if len(self.day_window) >= self.rpd_limit:
                raise Exception("Daily Groq quota exceeded")
            self.minute_window.append(now)
            self.day_window.append(now)

    def _cleanup_windows(self, now: float) -> None:
        minute_ago = now - 60
        while self.minute_window and self.minute_window[0] < minute_ago:
            self.minute_window.popleft()
        day_ago = now - 86_400
        while self.day_window and self.day_window[0] < day_ago:
            self.day_window.popleft()


class ReferenceBatchOptimizer:
    """The reference GroqBatchOptimizer: every request waits out the 100 ms window."""

    def __init__(self, send: Callable[[str], Awaitable[str]]) -> None:
        self.send = send
        self.pending_requests: list[dict[str, Any]] = []
        self.batch_interval = 0.1
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit_request(self, agent_type: str, prompt: str, priority: str = "normal") -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending_requests.append({"agent_type": agent_type, "prompt": prompt, "priority": priority,
                                      "future": future})
        task = asyncio.create_task(self._process_batch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await future

    async def _process_batch(self) -> None:
        await asyncio.sleep(self.batch_interval)
        if not self.pending_requests:
            return
        batch = sorted(self.pending_requests,
                       key=lambda x: 0 if x["priority"] == "critical" else 1 if x["priority"] == "high" else 2)
        self.pending_requests = []
        by_agent_type: dict[str, list[dict[str, Any]]] = {}
        for req in batch:
            by_agent_type.setdefault(req["agent_type"], []).append(req)
        await asyncio.gather(*(self._process_agent_batch(reqs) for reqs in by_agent_type.values()))

    async def _process_agent_batch(self, requests: list[dict[str, Any]]) -> None:
        for request in requests:
            request["future"].set_result(await self.send(request["prompt"]))


# --- 1. saturated run ----------------------------------------------------------------------------

Answered = Callable[[], None] | None  # what a limiter does when the answer comes back


async def _saturate(acquire: Callable[[], Awaitable[Answered]], clock: FakeClock) -> list[float]:
    """40 callers, each: wait for admission, note the time, take a second to be answered, repeat."""
    start = clock.monotonic()
    admitted: list[float] = []

    async def caller() -> None:
        while True:
            answered = await acquire()
            if clock.monotonic() - start < RUN_SECONDS:
                admitted.append(clock.monotonic())  # absolute: the limiters' own arithmetic
            await clock.sleep(SERVICE_SECONDS)
            if answered is not None:
                answered()

    callers = [asyncio.create_task(caller()) for _ in range(CALLERS)]
    await settle()  # every caller is waiting before time starts to move
    await clock.advance(RUN_SECONDS)
    for task in callers:
        task.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    return admitted


async def _saturate_reference() -> list[float]:
    clock = FakeClock()
    manager = ReferenceGroqResourceManager(clock)

    async def acquire() -> Answered:
        await manager.acquire()
        return None  # the reference design does nothing with the answer

    return await _saturate(acquire, clock)


async def _saturate_quota() -> list[float]:
    clock = FakeClock()
    quota = GroqQuota(MODEL, DEFAULT_MODELS[MODEL], clock)

    async def acquire() -> Answered:
        reservation = await wait_and_admit(quota, 180, clock)
        return lambda: quota.settle(reservation, 120)

    return await _saturate(acquire, clock)


class _InstantFakeSender:
    def __init__(self, clock: FakeClock, sent: list[float]) -> None:
        self.clock = clock
        self.sent = sent

    async def send(self, request: PromptRequest, timeout: float, attempt: object = None) -> Completion:  # noqa: ASYNC109
        self.sent.append(self.clock.monotonic())
        await self.clock.sleep(SERVICE_SECONDS)
        return Completion("ok", request.model or MODEL, 60, 60)


async def _saturate_scheduler() -> list[float]:
    """The whole medops path: 40 callers submitting normal requests through the scheduler."""
    clock = FakeClock()
    sent: list[float] = []
    settings = Settings(models={MODEL: DEFAULT_MODELS[MODEL]}, default_model=MODEL, groq_concurrent=CALLERS)
    scheduler = Scheduler(settings, QuotaBook(settings, clock), _InstantFakeSender(clock, sent), clock)
    await scheduler.start()
    start = clock.monotonic()

    async def caller(number: int) -> None:
        while True:
            await scheduler.submit(PromptRequest("summarise the case", AGENTS[number % 4],
                                                 max_completion_tokens=100))

    callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
    await settle()
    await clock.advance(RUN_SECONDS)
    await scheduler.stop()
    await asyncio.gather(*callers, return_exceptions=True)
    return [t for t in sent if t - start < RUN_SECONDS]


def _steady_rate(admitted: list[float]) -> float:
    """Admissions per minute after the first instant's, over the time from the first to the last:
    the long-run rate, whatever phase the run's end falls on (10 min ends just after a burst)."""
    later = [t for t in admitted if t > admitted[0]]
    return 60 * len(later) / (later[-1] - admitted[0]) if later else 0.0


def test_saturated_run_never_overruns_the_minute() -> None:
    limit = DEFAULT_MODELS[MODEL].rpm
    capacity = limit * RUN_SECONDS / 60
    rows = []
    for name, run in (("medops scheduler", _saturate_scheduler), ("medops GroqQuota", _saturate_quota),
                      ("reference GroqResourceManager", _saturate_reference)):
        admitted = asyncio.run(run())
        worst = max_in_any_span([(t, 1) for t in admitted], 60.0)
        rows.append((name, worst, len(admitted), len(admitted) / capacity, _steady_rate(admitted) / limit))
    print(f"\nsaturated run: {CALLERS} callers, {limit} requests/min, {RUN_SECONDS / 60:g} min of fake time, "
          f"answers after {SERVICE_SECONDS:g} s")
    print(f"  {'limiter':32} {'max in any 60 s':>16} {'admitted':>9} {'utilisation':>12} {'steady rate':>12}")
    for name, worst, count, used, steady in rows:
        flag = "OVERRUN" if worst > limit else "ok"
        print(f"  {name:32} {worst:>11} / {limit} {count:>9} {used:>11.1%} {steady:>11.1%}  {flag}")
    for name, worst, _, used, _ in rows[:2]:
        assert worst <= limit, f"{name} admitted {worst} in one minute"
        assert used >= 0.99, f"{name} used only {used:.1%} of the limit"


# --- 2. admission decisions per second -----------------------------------------------------------

def _roomy() -> ModelLimits:
    return ModelLimits(rpm=10**9, rpd=10**9, tpm=10**12, tpd=10**12)


def _quota_decisions(prefill: int = 0) -> float:
    quota = GroqQuota("m", _roomy(), SystemClock())
    if prefill:
        wall = SystemClock().wall()
        quota.restore([(wall - 3_600 + i * 0.1, 1, 100) for i in range(prefill)])
    try_admit = quota.try_admit
    started = time.perf_counter()
    for _ in range(DECISIONS):
        try_admit(100)
    return DECISIONS / (time.perf_counter() - started)


class _SteppingClock:
    """Time that moves 3 s per read: an admission and its settle read it once each, so 14,400
    admissions a day, the day window holds a steady 14,400 and every admission also expires
    one, as at the 8b model's full daily rate. C-level callables, so reading it costs what
    reading time.monotonic does."""

    def __init__(self) -> None:
        self.monotonic = functools.partial(next, itertools.count(1_000.0, DAY_SECONDS / 28_800))
        self.wall = time.time

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("an uncontended admission never waits")


def _steady_state_decisions() -> float:
    # 14,400 settled in the day window at each admission; one more so the next fits.
    quota = GroqQuota("m", ModelLimits(rpm=10**9, rpd=14_401, tpm=10**12, tpd=10**12), _SteppingClock())
    try_admit, settle = quota.try_admit, quota.settle
    for _ in range(14_400):
        settle(try_admit(100), 100)  # type: ignore[arg-type]
    started = time.perf_counter()
    for _ in range(DECISIONS):
        reservation = try_admit(100)
        if reservation is None:
            raise AssertionError("steady state must always have room")
        settle(reservation, 100)
    return DECISIONS / (time.perf_counter() - started)


def _admit_and_settle() -> float:
    quota = GroqQuota("m", _roomy(), SystemClock())
    try_admit, settle = quota.try_admit, quota.settle
    started = time.perf_counter()
    for _ in range(DECISIONS):
        settle(try_admit(100), 80)  # type: ignore[arg-type]
    return DECISIONS / (time.perf_counter() - started)


async def _quota_acquire_decisions() -> float:
    quota = GroqQuota("m", _roomy(), SystemClock())
    acquire = quota.acquire
    started = time.perf_counter()
    for _ in range(DECISIONS):
        await acquire(100)
    return DECISIONS / (time.perf_counter() - started)


async def _aiolimiter_decisions() -> float:
    limiter = AsyncLimiter(10**9, 60)
    acquire = limiter.acquire
    started = time.perf_counter()
    for _ in range(DECISIONS):
        await acquire()
    return DECISIONS / (time.perf_counter() - started)


def test_uncontended_admission_decisions_per_second() -> None:
    figures: dict[str, list[float]] = {"aiolimiter AsyncLimiter.acquire (await)": [],
                                       "GroqQuota.acquire (await)": [], "GroqQuota.try_admit": [],
                                       "GroqQuota.try_admit, 14,400 held in the day window": [],
                                       "GroqQuota.try_admit + settle": [],
                                       "GroqQuota.try_admit + settle, steady state (one expires each)": []}
    names = list(figures)
    for _ in range(ROUNDS):
        figures[names[0]].append(asyncio.run(_aiolimiter_decisions()))
        figures[names[1]].append(asyncio.run(_quota_acquire_decisions()))
        figures[names[2]].append(_quota_decisions())
        figures[names[3]].append(_quota_decisions(prefill=14_400))
        figures[names[4]].append(_admit_and_settle())
        figures[names[5]].append(_steady_state_decisions())
    best = {name: max(values) for name, values in figures.items()}
    print(f"\nuncontended admission decisions per second (best of {ROUNDS} rounds of {DECISIONS:,})")
    for name in names:
        print(f"  {name:62} {best[name]:>12,.0f}/s  ({best[name] / best[names[0]]:.2f}x aiolimiter)")


# --- 3. lone critical request overhead -----------------------------------------------------------

class _AnswerAtOnce:
    async def send(self, request: PromptRequest, timeout: float, attempt: object = None) -> Completion:  # noqa: ASYNC109
        return Completion("ok", request.model or MODEL, 10, 10)


async def _lone_critical_overheads() -> list[float]:
    clock = SystemClock()
    settings = Settings(models={MODEL: _roomy()}, default_model=MODEL)
    scheduler = Scheduler(settings, QuotaBook(settings, clock), _AnswerAtOnce(), clock)
    await scheduler.start()
    sender = _AnswerAtOnce()
    overheads = []
    for number in range(LONE_REQUESTS):
        request = PromptRequest("is this chest pain cardiac?", "triage", Priority.CRITICAL, request_id=str(number))
        started = time.perf_counter()
        await sender.send(request, 1.0)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        await scheduler.submit(request)
        overheads.append(time.perf_counter() - started - bare)
    await scheduler.stop()
    return overheads


async def _reference_lone_overheads() -> list[float]:
    async def send(prompt: str) -> str:
        return "ok"

    batcher = ReferenceBatchOptimizer(send)
    overheads = []
    for _ in range(REFERENCE_LONE_REQUESTS):
        started = time.perf_counter()
        await batcher.submit_request("triage", "is this chest pain cardiac?", "critical")
        overheads.append(time.perf_counter() - started)
    return overheads


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def test_lone_critical_request_overhead() -> None:
    ours = [asyncio.run(_lone_critical_overheads()) for _ in range(3)]
    best = min(ours, key=_p99)
    reference = asyncio.run(_reference_lone_overheads())
    print("\nscheduling overhead of a lone critical request (submit to answer, sender answers at once)")
    print(f"  {'medops Scheduler':32} p50 {statistics.median(best) * 1e3:8.3f} ms   p99 {_p99(best) * 1e3:8.3f} ms"
          f"   ({LONE_REQUESTS} requests, best of 3 runs)")
    print(f"  {'reference GroqBatchOptimizer':32} p50 {statistics.median(reference) * 1e3:8.3f} ms   "
          f"p99 {_p99(reference) * 1e3:8.3f} ms   ({REFERENCE_LONE_REQUESTS} requests)")


# --- 4. retries under 5xx: every attempt admitted, or one admission for all -------------------------

ERROR_SHARES = (0.2, 0.5)


class _FlakySender:
    """Answers after SERVICE_SECONDS, or fails with a 5xx for a seeded share of attempts; logs every attempt."""

    def __init__(self, clock: FakeClock, share: float, attempts: list[float]) -> None:
        self.clock = clock
        self.share = share
        self.attempts = attempts
        self.random = random.Random(11)

    async def send(self, request: PromptRequest, timeout: float, attempt: object = None) -> Completion:  # noqa: ASYNC109
        self.attempts.append(self.clock.monotonic())
        await self.clock.sleep(SERVICE_SECONDS)
        if self.random.random() < self.share:
            raise UpstreamUnavailable("server error HTTP 503", status=503)
        return Completion("ok", request.model or MODEL, 60, 60)


class _RetriesInsideOneAdmission:
    """The gateway's old design: retry a 5xx itself (same backoff, same max_retries), under one admission."""

    def __init__(self, inner: _FlakySender, max_retries: int) -> None:
        self.inner = inner
        self.max_retries = max_retries
        self.backoff = Backoff(*RETRY_BACKOFF, rng=random.Random(5))

    async def send(self, request: PromptRequest, timeout: float, attempt: object = None) -> Completion:  # noqa: ASYNC109
        for retry in itertools.count():
            try:
                return await self.inner.send(request, timeout)
            except UpstreamUnavailable:
                if retry >= self.max_retries:
                    raise
                await self.inner.clock.sleep(self.backoff.delay(retry))
        raise AssertionError("unreachable")


async def _saturate_with_errors(share: float, inside_one_admission: bool) -> tuple[list[float], int]:
    clock = FakeClock()
    attempts: list[float] = []
    settings = Settings(models={MODEL: DEFAULT_MODELS[MODEL]}, default_model=MODEL, groq_concurrent=CALLERS)
    flaky = _FlakySender(clock, share, attempts)
    sender = _RetriesInsideOneAdmission(flaky, settings.max_retries) if inside_one_admission else flaky
    scheduler = Scheduler(settings, QuotaBook(settings, clock), sender, clock,
                          retry_backoff=Backoff(*RETRY_BACKOFF, rng=random.Random(5)))
    await scheduler.start()
    start = clock.monotonic()
    answered = 0

    async def caller(number: int) -> None:
        nonlocal answered
        while True:
            try:
                await scheduler.submit(PromptRequest("summarise the case", AGENTS[number % 4],
                                                     max_completion_tokens=100))
                answered += 1
            except UpstreamUnavailable:
                pass

    callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
    await settle()
    await clock.advance(RUN_SECONDS)
    await scheduler.stop()
    await asyncio.gather(*callers, return_exceptions=True)
    return [t for t in attempts if t - start < RUN_SECONDS], answered


def test_saturated_run_with_5xx_never_sends_more_attempts_than_rpm() -> None:
    limit = DEFAULT_MODELS[MODEL].rpm
    print(f"\nsaturated run with 5xx: {CALLERS} callers, {limit} requests/min, {RUN_SECONDS / 60:g} min of fake "
          "time; attempts counted as Groq counts them")
    print(f"  {'design':44} {'5xx share':>9} {'attempts in any 60 s':>21} {'answered':>9}")
    for share in ERROR_SHARES:
        for name, inside in (("medops: each attempt admitted by the quota", False),
                             ("old gateway: retries inside one admission", True)):
            attempts, answered = asyncio.run(_saturate_with_errors(share, inside))
            worst = max_in_any_span([(t, 1) for t in attempts], 60.0)
            flag = "OVERRUN" if worst > limit else "ok"
            print(f"  {name:44} {share:>9.0%} {worst:>16} / {limit} {answered:>9}  {flag}")
            if not inside:
                assert worst <= limit, f"{name} sent {worst} attempts in one minute at {share:.0%} 5xx"
