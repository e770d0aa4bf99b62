# ruff: noqa: F811  (pytest hands the fixtures imported below to the tests by name)
"""The scheduler's per-request view and the operator's actions on one request: rows, reasons, cancel, priority."""

from __future__ import annotations

import pytest

from medops.core.clock import FakeClock, settle
from medops.core.groq.rate_headers import LimitExceeded
from medops.core.groq.requests import InvalidRequest, Priority
from medops.core.groq.scheduler import PriorityNotAllowed, RequestCancelled, Scheduler, UnknownRequest
from medops.core.groq.wait_reason import clock_time
from medops.core.settings.config import ModelLimits
from medops.core.snapshot import RequestRow
from tests.helpers.scheduler_fixtures import (  # noqa: F401  (the fixtures, by name)
    Build,
    FakeSender,
    build,
    make_settings,
    quota_kind,
    recorder,
    req,
    sender,
    submit,
)

ONE_A_MINUTE = ModelLimits(rpm=1, rpd=1_000, tpm=1_000_000, tpd=10_000_000)


async def test_each_held_request_is_a_row_with_figures_and_no_text(clock: FakeClock, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0, models={"x": ONE_A_MINUTE}))
    await submit(scheduler, req("first", Priority.HIGH, deadline=90.0))
    await submit(scheduler, req("second", client="key-7"))
    listed = rows(scheduler)
    first, second = listed["first"], listed["second"]
    assert (first.state, first.attempt, first.priority, first.model) == ("sending", 1, "high", "x")
    assert first.reason == "at Groq, attempt 1"
    assert first.deadline_left == pytest.approx(90.0)
    assert (second.state, second.client, second.agent, second.max_priority) == ("waiting", "key-7", "triage",
                                                                                 "critical")
    assert second.tokens > 100  # the prompt's estimate plus max_completion_tokens
    assert "p" not in {second.reason}  # never the prompt's text
    assert scheduler.snapshot().requests_held == 2


async def test_a_request_waiting_for_a_full_window_says_which_and_until_when(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0, models={"x": ONE_A_MINUTE}))
    await submit(scheduler, req("sent"))
    await clock.advance(1.0)  # answered: in the minute window from now
    await submit(scheduler, req("held"))
    row = rows(scheduler)["held"]
    frees_at = clock.wall() + 60.0
    assert row.reason == f"rpm full until {clock_time(frees_at)}"
    assert row.until == pytest.approx(frees_at)


async def test_the_other_wait_reasons_name_their_cause_and_time(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0, groq_concurrent=1))
    sender.latency = 100.0
    await submit(scheduler, req("busy"))
    await submit(scheduler, req("capped"))
    assert rows(scheduler)["capped"].reason == "concurrency cap 1/1"
    scheduler.pause()
    assert rows(scheduler)["capped"].reason == "intake paused"
    scheduler.resume()
    quota = scheduler._quotas["x"]
    quota.observe_429(38.0, LimitExceeded("tpm", 1, 1, 1, 38.0))
    assert rows(scheduler)["capped"].reason == "tpm blocked by a 429 for 38 s"
    quota.hold_for_capacity(40.0)
    assert rows(scheduler)["capped"].reason == "model held (498) for 40 s"


async def test_a_request_in_its_batch_window_says_when_it_closes(clock: FakeClock, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=2.0))
    await submit(scheduler, req("gathered"))
    row = rows(scheduler)["gathered"]
    assert (row.state, row.reason) == ("batching", "batch window closes in 2 s")


async def test_rows_are_bounded_and_list_the_most_urgent_first(clock: FakeClock, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0, models={"x": ONE_A_MINUTE}))
    for n in range(6):
        await submit(scheduler, req(f"n{n}"))
    await submit(scheduler, req("urgent", Priority.CRITICAL))
    listed = scheduler.request_rows(limit=3)
    assert [r.request_id for r in listed] == ["n0", "urgent", "n1"]  # n0 in flight, then by rank
    assert rows(scheduler)["n2"].reason.endswith("behind 1 critical, 1 normal")


async def test_cancelling_names_who_and_frees_the_reservation(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0))
    sender.latency = 100.0
    task = await submit(scheduler, req("flying"))
    quota = scheduler._quotas["x"]
    assert quota.in_flight == 1
    assert scheduler.cancel("flying", by="ops@vm-1")
    with pytest.raises(RequestCancelled, match="flying was cancelled by ops@vm-1 while sending"):
        await task
    assert quota.in_flight == 0
    assert rows(scheduler) == {}


async def test_a_raised_request_is_sent_next_when_room_returns(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0, models={"x": ONE_A_MINUTE}, starvation_bound=1_000.0))
    for name in ("a", "b", "c", "d"):
        await submit(scheduler, req(name))
    assert scheduler.set_priority("d", Priority.CRITICAL) is Priority.NORMAL
    row = rows(scheduler)["d"]
    assert (row.priority, row.effective) == ("critical", "critical")
    assert scheduler.snapshot().queues[0].depth == 1 and scheduler.snapshot().queues[2].depth == 2
    await clock.advance(62.0)
    await settle()
    assert sender.order()[:2] == ["a", "d"]


async def test_a_lowered_request_goes_after_the_others(
        clock: FakeClock, sender: FakeSender, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0, models={"x": ONE_A_MINUTE}, starvation_bound=1_000.0))
    for name, priority in (("a", Priority.HIGH), ("b", Priority.HIGH), ("c", Priority.HIGH)):
        await submit(scheduler, req(name, priority))
    scheduler.set_priority("b", Priority.NORMAL)
    for _ in range(2):
        await clock.advance(62.0)
        await settle()
    assert sender.order() == ["a", "c", "b"]


async def test_a_priority_above_the_requests_bound_is_refused(clock: FakeClock, build: Build) -> None:
    scheduler = await build(make_settings(batch_interval=0.0, models={"x": ONE_A_MINUTE}))
    await submit(scheduler, req("first"))
    await submit(scheduler, req("bounded", client="key-7", max_priority=Priority.HIGH))
    with pytest.raises(PriorityNotAllowed, match=r"up to high at most .*key key-7"):
        scheduler.set_priority("bounded", Priority.CRITICAL)
    with pytest.raises(UnknownRequest):
        scheduler.set_priority("nobody", Priority.HIGH)
    assert rows(scheduler)["bounded"].priority == "normal"


def test_a_request_may_not_be_submitted_above_its_own_bound() -> None:
    with pytest.raises(InvalidRequest, match="above the request's max_priority"):
        req("x", Priority.CRITICAL, max_priority=Priority.HIGH)


def rows(scheduler: Scheduler) -> dict[str, RequestRow]:
    return {row.request_id: row for row in scheduler.snapshot().requests}
