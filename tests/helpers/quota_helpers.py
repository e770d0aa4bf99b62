"""Test doubles shared by the quota and scheduler tests: a real in-memory AdmissionStore, a quota that defers."""

from __future__ import annotations

import asyncio

from medops.core.clock import Clock
from medops.core.groq.quota import GroqQuota, Reservation
from medops.core.ledger.records import AdmissionStore
from medops.core.settings.config import ModelLimits


class MemoryAdmissionStore(AdmissionStore):
    """The AdmissionStore protocol kept in a list, as the DuckDB ledger keeps it in a table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int, int]] = []

    def record_admission(self, model: str, at_wall: float, requests: int, tokens: int) -> None:
        self.rows.append((model, at_wall, requests, tokens))

    def load_admissions(self, since_wall: float) -> list[tuple[str, float, int, int]]:
        return [row for row in self.rows if row[1] >= since_wall]


def admit_now(quota: GroqQuota, tokens: int) -> Reservation:
    """Admit `tokens` now, as a test setting up a window does (the quota must have room)."""
    reservation = quota.try_admit(tokens)
    assert reservation is not None, f"no room for {tokens} tokens: {quota.blocking(tokens)}"
    return reservation


async def acquire(quota: GroqQuota, tokens: int, clock: Clock) -> Reservation:
    """Wait on the clock until `tokens` fit, then admit (the scheduler's waiting, without the scheduler)."""
    while (reservation := quota.try_admit(tokens)) is None:
        await clock.sleep(max(quota.wait_time(tokens), 0.001))
    return reservation


def max_in_any_span(times_and_amounts: list[tuple[float, int]], span: float) -> int:
    """The largest total admitted in any half-open span of `span` seconds (two pointers)."""
    events = sorted(times_and_amounts)
    best = total = start = 0
    for at, amount in events:
        total += amount
        while events[start][0] + span <= at:  # the quota's own comparison
            total -= events[start][1]
            start += 1
        best = max(best, total)
    return best


class DeferringQuota(GroqQuota):
    """A scripted quota that answers as the fleet's does, in a round trip: each head's first `defers` asks are
    answered with the wait (none when there is room: "come back now"), the next with a reservation or the wait,
    decided by the in-process windows underneath; then the script starts again for the next head.

    So the scheduler's `admitting` path with a real suspension (a slot held across an await, the head asking
    again, a cancel or deadline or stop while asking) runs in every test that builds its quotas with it, and
    the contract suite (test_quota_contract.py) holds it to the contract as the real quotas."""

    def __init__(self, model: str, limits: ModelLimits, clock: Clock, store: AdmissionStore | None = None,
                 defers: int = 1) -> None:
        super().__init__(model, limits, clock, store)
        self.defers = defers
        self.asks = 0  # every round trip, for tests that check the path was taken
        self._deferred = 0  # asks deferred since the last decision

    async def admit(self, tokens: int, priority: int = 0, waited: float = 0.0) -> Reservation | float:
        self.asks += 1
        await asyncio.sleep(0)  # the round trip: other work runs meanwhile
        if self._deferred < self.defers:
            self._deferred += 1
            return self.wait_time(tokens)
        self._deferred = 0
        return await super().admit(tokens, priority, waited)
