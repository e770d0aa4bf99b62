# ruff: noqa: F811  (pytest hands the fixtures imported below to the tests by name)
"""Scheduler: priorities, batching, concurrency, aging, deadlines, cancellation, 429 requeues."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from medops.core.clock import FakeClock, settle
from medops.core.groq.backoff import Backoff
from medops.core.groq.errors import (
    CapacityExceeded,
    NeverSent,
    RateLimited,
    RequestRejected,
    TimedOut,
    UpstreamUnavailable,
)
from medops.core.groq.quota import QuotaExhausted, RequestTooLarge, UnknownModel
from medops.core.groq.rate_headers import LimitExceeded, RateLimitHeaders
from medops.core.groq.requests import InvalidRequest, Priority, PromptRequest, PromptResult
from medops.core.groq.scheduler import (
    MAX_CAPACITY_ATTEMPTS,
    DeadlineExceeded,
    QueueFull,
    RequestCancelled,
    Scheduler,
    SchedulerStopped,
)
from medops.core.groq.sender import REJECTION_HINTS
from medops.core.groq.token_estimate import estimate_prompt_tokens
from medops.core.settings.config import ModelLimits
from tests.helpers.quota_helpers import DeferringQuota, MemoryAdmissionStore, max_in_any_span
from tests.helpers.scheduler_fixtures import (  # noqa: F401  (the fixtures, by name)
    ROOMY,
    Build,
    FakeSender,
    MemoryRecorder,
    build,
    make_settings,
    quota_kind,
    recorder,
    req,
    sender,
    submit,
)


async def test_a_critical_request_is_sent_at_once_bypassing_the_batch_window(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    normal = await submit(scheduler, req("n"))
    critical = await submit(scheduler, req("c", Priority.CRITICAL))
    await settle()
    assert sender.sent == [(clock.monotonic(), sender.sent[0][1])]
    assert sender.order() == ["c"]
    await clock.advance(0.1)
    assert sender.order() == ["c", "n"]
    await clock.advance(1)
    assert (await critical).queue_wait == 0.0
    assert (await normal).queue_wait == pytest.approx(0.1)
    await scheduler.stop()


async def test_high_and_normal_requests_are_gathered_per_agent_and_released_high_first(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.5))  # binary fractions keep the times exact
    tasks = [await submit(scheduler, req("t-normal", agent="triage"))]
    await clock.advance(0.25)
    tasks.append(await submit(scheduler, req("d-normal", agent="diagnosis")))
    await clock.advance(0.125)
    tasks.append(await submit(scheduler, req("t-high", Priority.HIGH, agent="triage")))
    await clock.advance(0.0625)
    assert sender.order() == []
    await clock.advance(0.0625)  # triage's window (opened at 0) closes at 0.5
    assert sender.order() == ["t-high", "t-normal"]
    await clock.advance(0.25)  # diagnosis' window closes at 0.75
    assert sender.order() == ["t-high", "t-normal", "d-normal"]
    await clock.advance(1)
    await asyncio.gather(*tasks)
    await scheduler.stop()


async def test_no_more_than_groq_concurrent_requests_are_in_flight(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(groq_concurrent=3))
    tasks = [await submit(scheduler, req(f"r{i}", Priority.CRITICAL)) for i in range(10)]
    await settle()
    assert scheduler.snapshot().in_flight == 3
    await clock.advance(10)
    results = await asyncio.gather(*tasks)
    assert sender.max_in_flight == 3
    assert sorted(r.latency for r in results) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    await scheduler.stop()


async def test_priority_order_is_critical_then_high_then_normal_then_arrival(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(groq_concurrent=1, batch_interval=0.0))
    first = await submit(scheduler, req("busy", Priority.CRITICAL))
    await settle()
    tasks = [await submit(scheduler, req(name, priority)) for name, priority in
             [("n1", Priority.NORMAL), ("h1", Priority.HIGH), ("c1", Priority.CRITICAL), ("n2", Priority.NORMAL),
              ("h2", Priority.HIGH)]]
    await clock.advance(10)
    await asyncio.gather(first, *tasks)
    assert sender.order() == ["busy", "c1", "h1", "h2", "n1", "n2"]
    await scheduler.stop()


async def test_under_sustained_critical_load_high_and_normal_requests_get_through_one_bound_per_class(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    bound = 5.0
    scheduler = await build(make_settings(groq_concurrent=1, starvation_bound=bound, batch_interval=0.0))
    busy = await submit(scheduler, req("busy", Priority.CRITICAL))
    high = await submit(scheduler, req("high", Priority.HIGH))
    normal = await submit(scheduler, req("normal"))
    flood: list[asyncio.Task[PromptResult]] = [busy]
    for second in range(30):  # two critical requests a second against a capacity of one a second
        flood += [await submit(scheduler, req(f"c{second}-{k}", Priority.CRITICAL)) for k in range(2)]
        await clock.advance(1)
    # Critical at one bound (high) and two (normal); then it waits at most for the one request in flight.
    for task, classes_below in ((high, 1), (normal, 2)):
        result = await task
        assert classes_below * bound <= result.queue_wait <= classes_below * bound + sender.latency
    await scheduler.stop()
    await asyncio.gather(*flood, return_exceptions=True)


async def test_a_critical_request_is_not_passed_by_normal_ones_that_have_waited_less(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    # Issue 27: once every request had passed the bound the queue was first come first served, and a
    # critical prompt arriving behind a long backlog waited about 102 s while normal ones went first.
    scheduler = await build(make_settings(groq_concurrent=1, starvation_bound=30.0, batch_interval=0.0,
                                          queue_limit=1_000))
    backlog = [await submit(scheduler, req(f"n{i}")) for i in range(150)]
    await clock.advance(50)  # every normal request has waited 50 s: promoted once, to high
    critical = await submit(scheduler, req("critical", Priority.CRITICAL))
    await clock.advance(2)
    assert critical.done()  # first-come-first-served would have kept it behind the backlog for 100 s more
    assert (await critical).queue_wait <= sender.latency  # only the send already in flight went first
    await clock.advance(200)
    await asyncio.gather(*backlog)
    await scheduler.stop()


async def test_a_waiting_request_is_promoted_one_class_per_bound_and_then_competes_by_arrival(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    sender.latency = 12.0
    scheduler = await build(make_settings(groq_concurrent=1, starvation_bound=10.0, batch_interval=0.0))
    tasks = [await submit(scheduler, req("busy", Priority.CRITICAL)), await submit(scheduler, req("normal"))]
    await clock.advance(3)
    tasks.append(await submit(scheduler, req("high", Priority.HIGH)))
    await clock.advance(8)
    tasks.append(await submit(scheduler, req("critical", Priority.CRITICAL)))
    await clock.advance(1)  # busy answered at 12 s: normal is high now, not critical; high is still high
    await clock.advance(60)
    await asyncio.gather(*tasks)
    # critical outranks the promoted normal; the promoted normal and the native high tie, and arrival decides.
    assert sender.order() == ["busy", "critical", "normal", "high"]
    await scheduler.stop()


async def test_the_snapshot_shows_requests_promoted_into_each_class(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    sender.latency = 100.0
    scheduler = await build(make_settings(groq_concurrent=1, starvation_bound=10.0, batch_interval=0.0))
    tasks = [await submit(scheduler, req("busy", Priority.CRITICAL)), await submit(scheduler, req("normal"))]

    def promoted() -> list[int]:
        return [q.promoted for q in scheduler.snapshot().queues]  # critical, high, normal

    await clock.advance(9.5)
    assert promoted() == [0, 0, 0]
    await clock.advance(0.5)
    assert promoted() == [0, 1, 0]
    await clock.advance(10)
    assert promoted() == [1, 0, 0]
    assert [q.depth for q in scheduler.snapshot().queues] == [0, 0, 1]  # depth stays by submitted priority
    await clock.advance(200)
    await asyncio.gather(*tasks)
    await scheduler.stop()


async def test_without_aging_the_same_load_starves_the_normal_request(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(groq_concurrent=1, starvation_bound=3_600.0, batch_interval=0.0))
    flood: list[asyncio.Task[PromptResult]] = [await submit(scheduler, req("busy", Priority.CRITICAL))]
    normal = await submit(scheduler, req("normal"))
    for second in range(20):
        flood += [await submit(scheduler, req(f"c{second}-{k}", Priority.CRITICAL)) for k in range(2)]
        await clock.advance(1)
    assert not normal.done()
    await scheduler.stop()
    with pytest.raises(SchedulerStopped):
        await normal
    await asyncio.gather(*flood, return_exceptions=True)


async def test_a_spent_model_does_not_hold_up_another_model(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    tight = ModelLimits(rpm=1, rpd=100, tpm=100_000, tpd=1_000_000)
    scheduler = await build(make_settings(models={"x": tight, "y": ROOMY}, batch_interval=0.0))
    first_x = await submit(scheduler, req("x1", Priority.CRITICAL, model="x"))
    second_x = await submit(scheduler, req("x2", Priority.CRITICAL, model="x"))
    later_y = await submit(scheduler, req("y1", Priority.NORMAL, model="y"))
    await settle()
    assert sender.order() == ["x1", "y1"]
    await clock.advance(60.999)  # x1's answer came back at 1 s: it counts until 61 s
    assert sender.order() == ["x1", "y1"]
    await clock.advance(0.001)
    assert sender.order() == ["x1", "y1", "x2"]
    await clock.advance(1)
    await asyncio.gather(first_x, second_x, later_y)
    await scheduler.stop()


async def test_the_queue_is_bounded_and_a_submit_past_it_is_refused(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(queue_limit=2))
    tasks = [await submit(scheduler, req("a")), await submit(scheduler, req("b"))]
    await settle()
    with pytest.raises(QueueFull, match=r"2 requests are already waiting \(queue_limit 2\)"):
        await scheduler.submit(req("c"))
    assert scheduler.snapshot().rejected == 1
    await clock.advance(2)
    await asyncio.gather(*tasks)
    await scheduler.stop()


async def test_a_deadline_passing_in_the_queue_fails_the_request_and_frees_its_place(
        clock: FakeClock, sender: FakeSender, recorder: MemoryRecorder,
        build: Build) -> None:
    tight = ModelLimits(rpm=1, rpd=100, tpm=100_000, tpd=1_000_000)
    scheduler = await build(make_settings(models={"x": tight}, batch_interval=0.0))
    first = await submit(scheduler, req("first", Priority.CRITICAL))
    late = await submit(scheduler, req("late", deadline=5.0))
    await clock.advance(4.999)
    assert not late.done()
    await clock.advance(0.001)
    with pytest.raises(DeadlineExceeded, match=r"deadline of 5 s in the queue \(rpm full\)"):
        await late
    assert scheduler.snapshot().queues[2].depth == 0
    assert {w.name: w.used for w in scheduler._quotas["x"].snapshot().windows}["rpm"] == 1
    assert recorder.records[-1].outcome == "timeout"
    await first
    await scheduler.stop()


async def test_a_deadline_passing_in_flight_cancels_the_send(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    sender.latency = 10.0
    scheduler = await build()
    task = await submit(scheduler, req("slow", Priority.CRITICAL, deadline=3.0))
    await clock.advance(3)
    with pytest.raises(DeadlineExceeded, match="while Groq was answering"):
        await task
    assert sender.in_flight == 0
    assert scheduler.snapshot().in_flight == 0
    await scheduler.stop()


async def test_cancelling_a_queued_request_tells_its_caller_and_uses_no_quota(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    task = await submit(scheduler, req("gone"))
    await settle()
    assert scheduler.cancel("gone") is True
    with pytest.raises(RequestCancelled, match="gone was cancelled"):
        await task
    await clock.advance(1)
    assert sender.sent == []
    assert {w.name: w.used for w in scheduler._quotas["x"].snapshot().windows}["rpm"] == 0
    assert scheduler.cancel("gone") is False
    await scheduler.stop()


async def test_a_caller_giving_up_takes_its_request_out_of_the_queue(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    task = await submit(scheduler, req("impatient"))
    await settle()
    task.cancel()
    await settle()
    assert scheduler.snapshot().queues[2].depth == 0
    await clock.advance(1)
    assert sender.sent == []
    await scheduler.stop()


async def test_cancelling_in_flight_stops_the_send_and_keeps_the_quota_groq_may_have_counted(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    task = await submit(scheduler, req("flying", Priority.CRITICAL))
    await settle()
    assert scheduler.cancel("flying")
    with pytest.raises(RequestCancelled):
        await task
    assert sender.in_flight == 0
    assert {w.name: w.used for w in scheduler._quotas["x"].snapshot().windows}["rpm"] == 1
    assert scheduler._quotas["x"].in_flight == 0  # counted from the cancel, when it may have just arrived
    await scheduler.stop()


async def test_pause_holds_work_in_the_queue_and_resume_sends_it(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    scheduler.pause()
    task = await submit(scheduler, req("held", Priority.CRITICAL))
    await clock.advance(5)
    assert sender.sent == [] and scheduler.snapshot().paused
    assert scheduler.snapshot().queues[0].depth == 1
    scheduler.resume()
    await settle()
    await clock.advance(1)
    assert (await task).queue_wait == 5.0
    await scheduler.stop()


async def test_a_429_requeues_the_request_after_the_named_dimension_unblocks(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0))
    limit = LimitExceeded("tpm", 6_000, 5_990, 200, 7.5)
    sender.failures["r"] = [RateLimited(7.5, limit, RateLimitHeaders(remaining_tokens=10))]
    task = await submit(scheduler, req("r", Priority.CRITICAL))
    await clock.advance(1)  # the 429 arrives after a second
    assert scheduler._quotas["x"].snapshot().rate_limited == 1
    await clock.advance(7.25)
    assert len(sender.sent) == 1
    await clock.advance(0.25)
    assert len(sender.sent) == 2
    await clock.advance(1)
    result = await task
    assert result.attempts == 2
    assert result.latency == pytest.approx(9.5)
    await scheduler.stop()


async def test_a_rejected_request_is_not_retried_and_gives_back_its_tokens(
        clock: FakeClock, sender: FakeSender, recorder: MemoryRecorder,
        build: Build) -> None:
    scheduler = await build()
    sender.failures["bad"] = [RequestRejected(400, "invalid model parameters")]
    task = await submit(scheduler, req("bad", Priority.CRITICAL))
    await clock.advance(1)
    with pytest.raises(RequestRejected):
        await task
    assert len(sender.sent) == 1
    assert {w.name: w.used for w in scheduler._quotas["x"].snapshot().windows}["tpm"] == 0
    assert (recorder.records[-1].outcome, recorder.records[-1].status) == ("rejected", 400)
    await scheduler.stop()


async def test_a_413_is_one_attempt_recorded_as_rejected_and_says_what_to_do(
        clock: FakeClock, sender: FakeSender, recorder: MemoryRecorder, build: Build) -> None:
    scheduler = await build()
    sender.failures["big"] = [RequestRejected(413, REJECTION_HINTS[413]), RequestRejected(413, REJECTION_HINTS[413])]
    task = await submit(scheduler, req("big", Priority.CRITICAL))
    await clock.advance(30)  # time for any retry or requeue to have happened
    with pytest.raises(RequestRejected, match="shorten it or lower max_completion_tokens") as rejected:
        await task
    assert rejected.value.status == 413
    assert len(sender.sent) == 1 and scheduler.retried == 0
    assert [(r.outcome, r.status, r.attempts) for r in recorder.records] == [("rejected", 413, 1)]
    await scheduler.stop()


def server_error(status: int = 503) -> UpstreamUnavailable:
    """What the gateway raises for one attempt answered with a 5xx."""
    return UpstreamUnavailable(f"server error HTTP {status} from local (http://127.0.0.1:1)",
                               reason=f"server error HTTP {status}", status=status)


def used(scheduler: Scheduler, model: str = "x") -> dict[str, int]:
    return {w.name: w.used for w in scheduler._quotas[model].snapshot().windows}


async def test_a_5xx_then_success_is_two_attempts_each_admitted_by_the_quota(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    store = MemoryAdmissionStore()
    scheduler = await build(store=store)
    sender.failures["flaky"] = [server_error()]
    task = await submit(scheduler, req("flaky", Priority.CRITICAL))
    await clock.advance(1)  # the 503 comes back: counted as reserved, the request backs off
    assert used(scheduler)["rpm"] == 1 and scheduler._quotas["x"].in_flight == 0
    assert len(sender.sent) == 1 and scheduler.snapshot().queues[0].depth == 1  # waiting visibly
    await clock.advance(0.25)  # the first backoff is 0.125-0.25 s
    assert len(sender.sent) == 2
    await clock.advance(1)
    result = await task
    assert result.attempts == 2 and result.completion.text == "ok"
    assert used(scheduler)["rpm"] == 2  # both attempts reached Groq; both count in the minute
    # Durably too: each attempt admitted, then moved to its settle time.
    assert [row[2] for row in store.rows] == [1, -1, 1, 1, -1, 1]
    assert scheduler.retried == 1
    await scheduler.stop()


async def test_an_attempt_that_never_reached_groq_gives_its_reservation_back_and_is_retried(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    store = MemoryAdmissionStore()
    scheduler = await build(store=store)
    sender.failures["r"] = [NeverSent("cannot connect (ConnectError) from local (http://127.0.0.1:1)",
                                      reason="cannot connect (ConnectError)")]
    task = await submit(scheduler, req("r", Priority.CRITICAL))
    await clock.advance(1)  # refused: released, backing off
    assert used(scheduler) == {"rpm": 0, "rpd": 0, "tpm": 0, "tpd": 0} and scheduler._quotas["x"].in_flight == 0
    assert scheduler.snapshot().queues[0].depth == 1 and scheduler.retried == 1
    await clock.advance(1.25)
    result = await task
    assert result.attempts == 2 and used(scheduler)["rpm"] == 1  # only the attempt that was answered
    assert [row[2] for row in store.rows] == [1, -1, 1, -1, 1]  # admitted, given back; admitted, settled
    await scheduler.stop()


async def test_an_endless_5xx_tells_the_caller_after_max_retries_with_the_attempt_count(
        clock: FakeClock, sender: FakeSender, recorder: MemoryRecorder, build: Build) -> None:
    scheduler = await build(make_settings(max_retries=3))
    sender.failures["down"] = [server_error(500) for _ in range(10)]
    task = await submit(scheduler, req("down", Priority.CRITICAL))
    await clock.advance(30)
    with pytest.raises(UpstreamUnavailable, match=r"after 4 attempts, stopped because max_retries is 3; "
                                                  r"last: server error HTTP 500") as failed:
        await task
    assert (failed.value.attempts, failed.value.status, failed.value.reason) == (4, 500, "server error HTTP 500")
    assert len(sender.sent) == 4
    quota = scheduler._quotas["x"]
    # Each attempt may have been counted by Groq: each counts its whole reservation, none is left in flight.
    assert quota.in_flight == 0
    assert (used(scheduler)["rpm"], used(scheduler)["tpm"]) == (4, 4 * (estimate_prompt_tokens("p") + 100))
    assert (recorder.records[-1].outcome, recorder.records[-1].status) == ("failed", 500)
    assert scheduler.snapshot().failed == 1 and scheduler.snapshot().queues[0].depth == 0
    await scheduler.stop()


async def test_a_request_whose_every_attempt_timed_out_tells_the_caller_it_timed_out(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    # A trial's worker counted 27 timeouts as "UpstreamUnavailable", like a 5xx: the kind of the last failure
    # is what the caller hears.
    scheduler = await build(make_settings(max_retries=1))
    sender.failures["slow"] = [TimedOut("no answer within 30s") for _ in range(3)]
    task = await submit(scheduler, req("slow", Priority.CRITICAL))
    await clock.advance(30)
    with pytest.raises(TimedOut, match=r"after 2 attempts, stopped because max_retries is 1; last: no answer"):
        await task
    await scheduler.stop()


async def test_retry_backoff_is_capped_jittered_and_grows(clock: FakeClock, sender: FakeSender,
                                                           build: Build) -> None:
    sender.latency = 0.5
    scheduler = await build(make_settings(max_retries=6),
                            retry_backoff=Backoff(1.0, 4.0, rng=random.Random(3)))
    sender.failures["r"] = [server_error() for _ in range(6)]
    task = await submit(scheduler, req("r", Priority.CRITICAL))
    await clock.advance(60)
    await task
    times = [at for at, _ in sender.sent]
    pauses = [later - earlier - sender.latency for earlier, later in itertools.pairwise(times)]
    mirror = random.Random(3)
    expected = [c / 2 + mirror.uniform(0, c / 2) for c in (1.0, 2.0, 4.0, 4.0, 4.0, 4.0)]
    assert pauses == pytest.approx(expected)
    assert all(c / 2 <= p <= c for p, c in zip(pauses, (1.0, 2.0, 4.0, 4.0, 4.0, 4.0), strict=True))
    await scheduler.stop()


async def test_a_backoff_that_would_pass_the_deadline_ends_the_request_with_the_last_reason(
        clock: FakeClock, sender: FakeSender, recorder: MemoryRecorder, build: Build) -> None:
    scheduler = await build()
    sender.failures["soon"] = [server_error(502)]
    task = await submit(scheduler, req("soon", Priority.CRITICAL, deadline=1.1))
    await clock.advance(1)  # the 502 at 1 s; the shortest backoff (0.125 s) ends past 1.1 s
    with pytest.raises(UpstreamUnavailable, match=r"after 1 attempts, stopped because its deadline of 1\.1 s "
                                                  r"leaves no time for another; last: server error HTTP 502"):
        await task
    assert len(sender.sent) == 1 and recorder.records[-1].outcome == "timeout"
    await scheduler.stop()


async def test_a_request_backing_off_can_be_cancelled_and_is_shown_waiting(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(retry_backoff=Backoff(10.0, 10.0))
    sender.failures["r"] = [server_error()]
    task = await submit(scheduler, req("r", Priority.CRITICAL))
    await clock.advance(2)
    assert scheduler.snapshot().queues[0].depth == 1 and scheduler.snapshot().queues[0].wait_p95 == 2
    assert scheduler.cancel("r")
    with pytest.raises(RequestCancelled):
        await task
    await clock.advance(20)
    assert len(sender.sent) == 1 and scheduler.snapshot().queues[0].depth == 0
    await scheduler.stop()


async def test_a_burst_of_5xx_never_sends_more_attempts_in_a_minute_than_rpm(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    tight = ModelLimits(rpm=3, rpd=1_000, tpm=1_000_000, tpd=10_000_000)
    scheduler = await build(make_settings(models={"x": tight}, batch_interval=0.0, max_retries=5))
    tasks = []
    for i in range(6):
        sender.failures[f"r{i}"] = [server_error() for _ in range(2)]
        tasks.append(await submit(scheduler, req(f"r{i}", Priority.CRITICAL)))
    await clock.advance(600)
    results = await asyncio.gather(*tasks)
    assert [r.attempts for r in results] == [3] * 6
    # As Groq counts them: every attempt, at the moment it was sent.
    assert len(sender.sent) == 18
    assert max_in_any_span([(at, 1) for at, _ in sender.sent], 60.0) <= 3
    await scheduler.stop()


async def test_a_498_holds_only_its_model_and_the_request_is_answered_after_the_hold(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0))
    sender.failures["x1"] = [CapacityExceeded("local is over capacity for this model (HTTP 498)")]
    first = await submit(scheduler, req("x1", Priority.CRITICAL, model="x"))
    await clock.advance(1)  # the 498 arrives: model x is held 0.25-0.5 s
    quota = scheduler._quotas["x"].snapshot()
    assert quota.capacity_exceeded == 1 and 0.25 <= quota.capacity_hold <= 0.5
    assert "over capacity (498)" in scheduler._quotas["x"].blocking(1)
    other = await submit(scheduler, req("y1", Priority.NORMAL, model="y"))
    same = await submit(scheduler, req("x2", Priority.CRITICAL, model="x"))
    assert sender.order() == ["x1", "y1"]  # the other model goes on; x waits out its hold
    await clock.advance(0.5)
    assert sender.order() == ["x1", "y1", "x1", "x2"]  # the retried request first, then the next
    await clock.advance(1)
    result = await first
    assert result.attempts == 2 and result.completion.text == "ok"
    assert (await same).attempts == 1 and (await other).attempts == 1
    assert scheduler._quotas["x"].snapshot().capacity_hold == 0.0
    assert used(scheduler)["rpm"] == 3  # the refused attempt counted too
    await scheduler.stop()


async def test_a_498_to_the_flex_tier_holds_flex_requests_only(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0))
    flex = {"params": {"service_tier": "flex"}}
    sender.failures["f1"] = [CapacityExceeded("flex tier capacity exceeded (HTTP 498)")]
    first = await submit(scheduler, req("f1", Priority.CRITICAL, model="x", **flex))
    await clock.advance(1)  # the 498 arrives: x's flex tier is held 0.25-0.5 s, x itself is not
    quota = scheduler._quotas["x"].snapshot()
    assert quota.capacity_exceeded == 1 and quota.capacity_hold == 0.0
    also_flex = await submit(scheduler, req("f2", Priority.CRITICAL, model="x", **flex))
    on_demand = await submit(scheduler, req("o1", Priority.NORMAL, model="x"))
    assert sender.order() == ["f1", "o1"]  # the on-demand request behind the held flex one goes at once
    await clock.advance(0.5)
    assert sorted(sender.order()[2:]) == ["f1", "f2"]  # both flex requests after the hold
    await clock.advance(1)
    assert (await first).attempts == 2 and (await also_flex).attempts == 1 and (await on_demand).attempts == 1
    await scheduler.stop()


async def test_498s_in_a_row_grow_the_hold_but_those_sent_before_it_do_not(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    hold = Backoff(0.5, 8.0, rng=random.Random(5))
    scheduler = await build(make_settings(batch_interval=0.0), capacity_hold=hold)
    over = "over capacity (HTTP 498)"
    sender.failures["a"] = [CapacityExceeded(over) for _ in range(3)]
    sender.failures["b"] = [CapacityExceeded(over) for _ in range(3)]  # each in flight beside one of a's
    tasks = [await submit(scheduler, req(name, Priority.CRITICAL)) for name in ("a", "b")]
    await clock.advance(60)
    await asyncio.gather(*tasks)
    a_times = [at for at, r in sender.sent if r.request_id == "a"]
    mirror = random.Random(5)
    holds = [c / 2 + mirror.uniform(0, c / 2) for c in (0.5, 1.0, 2.0)]  # b's 498s came with a's: no step
    assert [later - earlier - 1 for earlier, later in itertools.pairwise(a_times)] == \
        pytest.approx(holds)
    assert [at for at, r in sender.sent if r.request_id == "b"] == a_times
    assert scheduler._quotas["x"].snapshot().capacity_exceeded == 6
    await scheduler.stop()


async def test_a_498_whose_hold_outlasts_the_deadline_ends_with_capacity_exceeded(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(capacity_hold=Backoff(4.0, 8.0))
    sender.failures["r"] = [CapacityExceeded("over capacity (HTTP 498)")]
    task = await submit(scheduler, req("r", Priority.CRITICAL, deadline=2.0))
    await clock.advance(1)
    with pytest.raises(CapacityExceeded, match=r"x was over capacity \(HTTP 498\) for request r: 1 attempts, "
                                               r"stopped because its deadline of 2 s ends before the hold") as over:
        await task
    assert over.value.attempts == 1
    await scheduler.stop()


async def test_endless_498s_end_after_a_bounded_number_of_attempts(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    sender.failures["r"] = [CapacityExceeded("over capacity (HTTP 498)") for _ in range(20)]
    task = await submit(scheduler, req("r", Priority.CRITICAL))
    await clock.advance(600)
    with pytest.raises(CapacityExceeded, match=f"{MAX_CAPACITY_ATTEMPTS} attempts"):
        await task
    assert len(sender.sent) == MAX_CAPACITY_ATTEMPTS
    await scheduler.stop()


async def test_a_request_larger_than_the_minute_is_refused_at_submit(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(models={"x": ModelLimits(30, 1_000, 6_000, 500_000)}))
    with pytest.raises(RequestTooLarge, match="tokens-per-minute limit of 6,000"):
        await scheduler.submit(PromptRequest("p", "triage", max_completion_tokens=6_000))
    assert sender.sent == []
    await scheduler.stop()


async def test_unknown_models_and_duplicate_ids_are_refused(
        clock: FakeClock, build: Build) -> None:
    scheduler = await build()
    with pytest.raises(UnknownModel):
        await scheduler.submit(req("a", model="nope"))
    task = await submit(scheduler, req("dup"))
    await settle()
    with pytest.raises(InvalidRequest, match="already queued"):
        await scheduler.submit(req("dup"))
    await clock.advance(2)
    await task
    await scheduler.stop()


async def test_when_the_day_is_spent_requests_wait_visibly_and_fail_fast_is_refused(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    daily = ModelLimits(rpm=30, rpd=2, tpm=100_000, tpd=1_000_000)
    scheduler = await build(make_settings(models={"x": daily}, batch_interval=0.0))
    done = [await submit(scheduler, req(f"r{i}", Priority.CRITICAL)) for i in range(2)]
    await clock.advance(1)
    await asyncio.gather(*done)
    waiting = await submit(scheduler, req("patient", Priority.HIGH))
    with pytest.raises(QuotaExhausted, match="rpd full"):
        await scheduler.submit(req("hasty", Priority.HIGH, fail_fast=True))
    await clock.advance(3_600)
    snapshot = scheduler.snapshot()
    assert snapshot.queues[1].depth == 1
    assert snapshot.queues[1].wait_p95 == pytest.approx(3_600)
    await clock.advance(86_400 - 3_601)
    assert not waiting.done()
    await clock.advance(1)  # the two were answered at 1 s and count until a day later
    await clock.advance(1)
    assert (await waiting).queue_wait == pytest.approx(86_400)
    await scheduler.stop()


async def test_stop_tells_every_waiting_caller(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    queued = await submit(scheduler, req("queued"))
    flying = await submit(scheduler, req("flying", Priority.CRITICAL))
    await settle()
    await scheduler.stop()
    for task in (queued, flying):
        with pytest.raises(SchedulerStopped, match="submit it again"):
            await task
    with pytest.raises(SchedulerStopped, match="not running"):
        await scheduler.submit(req("after"))


async def test_results_carry_quota_left_and_settle_real_usage(
        clock: FakeClock, sender: FakeSender, recorder: MemoryRecorder,
        build: Build) -> None:
    store = MemoryAdmissionStore()
    scheduler = await build(store=store)
    result = await asyncio.gather(await submit(scheduler, req("a", Priority.CRITICAL)), clock.advance(1))
    prompt_result = result[0]
    assert prompt_result.quota_left["rpm"] == 999
    assert prompt_result.quota_left["tpm"] == ROOMY.tpm - 30  # 20 prompt + 10 completion tokens
    reserved = estimate_prompt_tokens("p") + 100
    # Admitted at 0 (durably, in case of a crash), then moved to its settle time with the real usage.
    sent, answered = clock.wall() - 1, clock.wall()
    assert [row[1:] for row in store.rows] == [(sent, 1, reserved), (sent, -1, -reserved), (answered, 1, 30)]
    record = recorder.records[-1]
    assert (record.outcome, record.prompt_tokens, record.completion_tokens, record.agent) == ("ok", 20, 10, "triage")
    await scheduler.stop()


async def test_the_snapshot_shows_depth_and_waits_per_priority(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(groq_concurrent=1, batch_interval=0.0))
    tasks = [await submit(scheduler, req(f"c{i}", Priority.CRITICAL)) for i in range(3)]
    tasks.append(await submit(scheduler, req("n")))
    await settle()
    snapshot = scheduler.snapshot()
    assert [(q.priority, q.depth) for q in snapshot.queues] == [("critical", 2), ("high", 0), ("normal", 1)]
    assert (snapshot.in_flight, snapshot.concurrency) == (1, 1)
    await clock.advance(4)
    await asyncio.gather(*tasks)
    waits = scheduler.snapshot().queues[0]
    # Waits 0, 1 and 2 s (one send a second); medops.core.waits takes rank round(pct/100 * (n-1)):
    # p50 is rank round(1.0) = 1 -> 1 s, p95 is rank round(1.9) = 2 -> 2 s.
    assert (waits.depth, waits.wait_p50, waits.wait_p95) == (0, 1.0, 2.0)
    await scheduler.stop()


async def test_a_send_cancelled_before_it_starts_still_frees_its_slot_and_tells_the_caller(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    task = asyncio.create_task(scheduler.submit(req("instant", Priority.CRITICAL)))
    await asyncio.sleep(0)  # submit has launched the send's task, which has not run yet
    assert scheduler.snapshot().in_flight == 1
    assert scheduler.cancel("instant")
    with pytest.raises(RequestCancelled):
        await task
    assert scheduler.snapshot().in_flight == 0
    assert sender.sent == []
    quota = scheduler._quotas["x"]
    assert quota.in_flight == 0 and {w.name: w.used for w in quota.snapshot().windows}["rpm"] == 0


async def test_raising_concurrency_at_run_time_sends_waiting_work_at_once(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(groq_concurrent=1))
    tasks = [await submit(scheduler, req(f"r{i}", Priority.CRITICAL)) for i in range(3)]
    assert len(sender.sent) == 1
    scheduler.apply(make_settings(groq_concurrent=3))
    await settle()
    assert len(sender.sent) == 3
    await clock.advance(1)
    await asyncio.gather(*tasks)


def asks(scheduler: Scheduler, model: str = "x") -> int:
    """Round trips the deferring quota answered (0 for the in-process one, which decides at once)."""
    quota = scheduler._quotas[model]
    return quota.asks if isinstance(quota, DeferringQuota) else 0


async def test_with_a_deferring_quota_every_attempt_asks_and_holds_a_slot_while_asking(
        clock: FakeClock, sender: FakeSender, quota_kind: str, build: Build) -> None:
    scheduler = await build(make_settings(groq_concurrent=1, batch_interval=0.0))
    first = asyncio.create_task(scheduler.submit(req("first", Priority.CRITICAL)))
    second = asyncio.create_task(scheduler.submit(req("second", Priority.CRITICAL)))
    await asyncio.sleep(0)  # both submitted; the head is asking its quota, whichever it is
    assert scheduler.snapshot().in_flight == 1  # asking holds the one slot: the second waits its turn
    assert [q.depth for q in scheduler.snapshot().queues] == [2, 0, 0]  # asking is still waiting its turn
    await settle()
    assert sender.order() == ["first"]
    await clock.advance(2)
    assert [r.attempts for r in await asyncio.gather(first, second)] == [1, 1]
    assert asks(scheduler) == (4 if quota_kind == "deferring" else 0)  # "come back now", then admitted: each
    assert scheduler._quotas["x"].in_flight == 0


async def test_every_quota_is_asked_the_same_way_and_the_request_shows_it_meanwhile(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0))
    task = asyncio.create_task(scheduler.submit(req("asked", Priority.CRITICAL)))
    await asyncio.sleep(0)  # submitted: its attempt is asking the quota, in process or deferring alike
    [row] = scheduler.request_rows()
    assert (row.state, row.reason) == ("admitting", "being admitted")  # no fleet: there is no store to name
    assert scheduler.snapshot().in_flight == 1
    await settle()
    assert scheduler.request_rows()[0].state == "sending"
    await clock.advance(1)
    assert (await task).attempts == 1


async def test_a_fail_fast_request_with_room_is_sent_though_the_quota_first_says_ask_again(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build()
    task = await submit(scheduler, req("hasty", Priority.CRITICAL, fail_fast=True))
    await clock.advance(1)
    assert (await task).attempts == 1


@pytest.mark.parametrize("quota_kind", ["deferring"])
async def test_a_request_cancelled_while_its_quota_is_asked_frees_its_slot_at_once_and_is_never_sent(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0))
    task = asyncio.create_task(scheduler.submit(req("gone", Priority.CRITICAL)))
    await asyncio.sleep(0)  # out asking the quota
    assert scheduler.snapshot().in_flight == 1
    assert scheduler.cancel("gone")
    assert scheduler.snapshot().in_flight == 0  # the slot was the request's, not the ask's
    with pytest.raises(RequestCancelled):
        await task
    await clock.advance(2)
    assert sender.sent == [] and scheduler._quotas["x"].in_flight == 0 and used(scheduler)["rpm"] == 0
    assert [q.depth for q in scheduler.snapshot().queues] == [0, 0, 0]


@pytest.mark.parametrize("quota_kind", ["deferring"])
async def test_stopping_while_the_quota_is_asked_tells_the_caller_and_leaves_nothing_counted(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0))
    task = asyncio.create_task(scheduler.submit(req("asking", Priority.CRITICAL)))
    await asyncio.sleep(0)  # out asking the quota
    await scheduler.stop()
    with pytest.raises(SchedulerStopped):
        await task
    snapshot = scheduler.snapshot()
    assert (snapshot.in_flight, [q.depth for q in snapshot.queues]) == (0, [0, 0, 0])
    assert sender.sent == [] and scheduler._quotas["x"].in_flight == 0
