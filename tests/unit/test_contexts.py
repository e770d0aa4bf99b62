"""The agent context pool and its figures, on the fake clock."""

from __future__ import annotations

import logging

import pytest

from medops.core.clock import FakeClock
from medops.core.memory.contexts import AgentContextPool, HeldContext


def test_contexts_come_from_the_pool_until_it_is_empty_then_are_created(clock: FakeClock) -> None:
    pool = AgentContextPool(2, clock, leak_seconds=60)
    for agent in ("a", "b", "c"):
        pool.acquire(agent)
    snapshot = pool.snapshot()
    assert (snapshot.idle, snapshot.active, snapshot.created_beyond_pool) == (0, 3, 1)
    assert (snapshot.acquisitions, snapshot.reuses) == (3, 2)
    assert snapshot.reuse_ratio == pytest.approx(2 / 3)


def test_an_agent_that_holds_a_context_gets_the_same_one_back(clock: FakeClock) -> None:
    pool = AgentContextPool(2, clock, leak_seconds=60)
    first = pool.acquire("a")
    first.messages.append("hello")
    assert pool.acquire("a") is first
    assert pool.snapshot().acquisitions == 1


def test_a_released_context_is_cleared_and_reused(clock: FakeClock) -> None:
    pool = AgentContextPool(1, clock, leak_seconds=60)
    context = pool.acquire("a")
    context.messages.append("symptoms")
    context.state["step"] = 3
    context.metadata["model"] = "m"
    assert pool.release("a")
    again = pool.acquire("b")
    assert again is context
    assert (again.messages, again.state, again.metadata) == ([], {}, {})
    assert pool.snapshot().reuses == 2


def test_the_pool_keeps_no_more_than_its_size(clock: FakeClock) -> None:
    pool = AgentContextPool(1, clock, leak_seconds=60)
    pool.acquire("a")
    pool.acquire("b")
    pool.release("a")
    pool.release("b")
    assert pool.snapshot().idle == 1


def test_releasing_an_agent_that_holds_nothing_says_so(clock: FakeClock) -> None:
    pool = AgentContextPool(1, clock, leak_seconds=60)
    assert not pool.release("nobody")
    assert pool.snapshot().idle == 1


def test_a_lease_releases_on_the_way_out_even_after_an_error(clock: FakeClock) -> None:
    pool = AgentContextPool(1, clock, leak_seconds=60)
    with pytest.raises(RuntimeError), pool.lease("a") as context:
        context.messages.append("x")
        raise RuntimeError("agent failed")
    assert (pool.snapshot().active, pool.snapshot().idle) == (0, 1)


async def test_contexts_held_past_the_threshold_are_reported_as_leaks(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    pool = AgentContextPool(4, clock, leak_seconds=60)
    pool.acquire("slow")
    await clock.advance(30)
    pool.acquire("fresh")
    assert pool.snapshot().leaked == 0
    await clock.advance(31)
    with caplog.at_level(logging.WARNING, logger="medops.core.memory.contexts"):
        assert pool.snapshot().leaked == 1
        assert pool.snapshot().leaked == 1
    assert pool.held_too_long() == (HeldContext("slow", 61),)
    assert len(caplog.records) == 1 and "slow" in caplog.records[0].getMessage()
    pool.release("slow")
    assert pool.snapshot().leaked == 0


def test_an_empty_pool_creates_every_context(clock: FakeClock) -> None:
    pool = AgentContextPool(0, clock, leak_seconds=60)
    pool.acquire("a")
    pool.release("a")
    snapshot = pool.snapshot()
    assert (snapshot.created_beyond_pool, snapshot.reuse_ratio, snapshot.idle) == (1, 0.0, 0)
