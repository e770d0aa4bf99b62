"""The quota contract (`ModelQuotaLike`), held to every implementation: the in-process `GroqQuota`, the fleet's
`FleetQuota` on a real redis-server, and the scripted `DeferringQuota` the scheduler's tests use.

What the scheduler relies on: `admit` gives a Reservation when there is room (a quota that asks elsewhere may
first say "ask again now", a wait of 0, a bounded number of times) and a positive wait when there is none, finite
for a request `check_size` lets through; `settle` and `release` free what was reserved, and a repeat of either
does nothing; the snapshot's figures add up with what was admitted and settled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest

from medops.core.clock import FakeClock
from medops.core.groq.quota import GroqQuota, ModelQuotaLike, RequestTooLarge, Reservation
from medops.core.settings.config import ModelLimits
from tests.helpers.fleet_helpers import fleet_of, member
from tests.helpers.quota_helpers import DeferringQuota
from tests.helpers.redis_server import RedisServer

MODEL = "contract-model"
ASKS = 5  # "ask again now" answers a quota may give one request before it decides


@dataclass
class Subject:
    """One quota under the contract, and how to let what it sent in the background land (a no-op in process)."""

    quota: ModelQuotaLike
    landed: Callable[[], Awaitable[None]]


Make = Callable[[ModelLimits], AbstractAsyncContextManager[Subject]]


async def _nothing() -> None:
    return None


@pytest.fixture(params=["in-process", "fleet", "deferring"])
def make(request: pytest.FixtureRequest) -> Make:
    kind = str(request.param)

    @asynccontextmanager
    async def subject(limits: ModelLimits) -> AsyncIterator[Subject]:
        if kind == "fleet":
            server: RedisServer = request.getfixturevalue("redis_server")
            async with member(server.url, limits, "contract", model=MODEL) as quota:
                async def landed() -> None:
                    await fleet_of(quota).flush()  # settles and releases go in the background
                    await fleet_of(quota).heartbeat()  # and the member reads the fleet's windows again
                yield Subject(quota, landed)
        elif kind == "deferring":
            yield Subject(DeferringQuota(MODEL, limits, FakeClock(), defers=2), _nothing)
        else:
            yield Subject(GroqQuota(MODEL, limits, FakeClock()), _nothing)

    return subject


async def ask(quota: ModelQuotaLike, tokens: int) -> Reservation | float:
    """What the scheduler does with a head: ask, and again at once while the answer is "ask again now"."""
    for _ in range(ASKS):
        answer = await quota.admit(tokens, 0, 0.0)
        if isinstance(answer, Reservation) or answer > 0:
            return answer
    raise AssertionError(f"{ASKS} answers of 'ask again now' in a row: the quota never decided")


async def admitted(quota: ModelQuotaLike, tokens: int) -> Reservation:
    answer = await ask(quota, tokens)
    assert isinstance(answer, Reservation), f"no room for {tokens} tokens: wait {answer}, {quota.blocking(tokens)}"
    return answer


def used(quota: ModelQuotaLike) -> dict[str, int]:
    return {w.name: w.used for w in quota.snapshot().windows}


LIMITS = ModelLimits(rpm=3, rpd=1_000, tpm=1_000, tpd=100_000, context_window=800)


async def test_admit_reserves_when_there_is_room_and_settle_frees_it(make: Make) -> None:
    async with make(LIMITS) as subject:
        quota = subject.quota
        reservation = await admitted(quota, 100)
        assert reservation.tokens == 100 and quota.in_flight == 1
        quota.settle(reservation, 40)
        assert quota.in_flight == 0
        await subject.landed()
        assert used(quota) == {"rpm": 1, "rpd": 1, "tpm": 40, "tpd": 40}  # what was used, not what was reserved


async def test_with_no_room_admit_says_how_long_to_wait_and_the_wait_is_finite(make: Make) -> None:
    async with make(LIMITS) as subject:
        quota = subject.quota
        held = [await admitted(quota, 10) for _ in range(LIMITS.rpm)]  # the minute's requests, all in flight
        wait = await ask(quota, 10)
        assert isinstance(wait, float) and 0 < wait < 86_400, wait
        assert quota.blocking(10) != "room available"
        assert quota.in_flight == LIMITS.rpm  # a wait reserves nothing
        for reservation in held:
            quota.settle(reservation, 10)
        assert quota.in_flight == 0


async def test_a_request_as_large_as_the_largest_gets_a_finite_wait_behind_another(make: Make) -> None:
    async with make(LIMITS) as subject:
        quota = subject.quota
        largest = quota.largest_request
        assert largest == LIMITS.context_window
        first = await admitted(quota, largest)
        wait = await ask(quota, largest)  # the minute's tokens are held by the first
        assert isinstance(wait, float) and 0 < wait < 86_400, wait
        quota.settle(first, largest)


async def test_check_size_refuses_what_could_never_be_admitted(make: Make) -> None:
    async with make(LIMITS) as subject:
        quota = subject.quota
        quota.check_size(quota.largest_request)
        with pytest.raises(RequestTooLarge, match="max_completion_tokens"):
            quota.check_size(quota.largest_request + 1)


async def test_release_gives_everything_back_once(make: Make) -> None:
    limits = ModelLimits(rpm=1, rpd=1_000, tpm=1_000, tpd=100_000)
    async with make(limits) as subject:
        quota = subject.quota
        reservation = await admitted(quota, 100)
        quota.release(reservation)
        quota.release(reservation)  # a repeat is ignored
        quota.settle(reservation, 100)  # and so is a settle after it
        assert quota.in_flight == 0
        await subject.landed()
        assert used(quota) == {"rpm": 0, "rpd": 0, "tpm": 0, "tpd": 0}  # never sent: nothing counts
        again = await admitted(quota, 100)  # the one request of the minute is free again
        quota.settle(again, 100)
        quota.settle(again, 100)  # a repeat is ignored
        assert quota.in_flight == 0
        await subject.landed()
        assert used(quota) == {"rpm": 1, "rpd": 1, "tpm": 100, "tpd": 100}


async def test_the_snapshot_adds_up_with_what_was_admitted_settled_and_in_flight(make: Make) -> None:
    limits = ModelLimits(rpm=10, rpd=1_000, tpm=10_000, tpd=100_000)
    async with make(limits) as subject:
        quota = subject.quota
        settled = [await admitted(quota, 100) for _ in range(3)]
        flying = [await admitted(quota, 200) for _ in range(2)]
        for reservation in settled:
            quota.settle(reservation, 50)
        await subject.landed()
        assert quota.in_flight == 2
        windows = {w.name: w for w in quota.snapshot().windows}
        # Settled use counts what was used, in flight what was reserved.
        assert {name: w.used for name, w in windows.items()} == {"rpm": 5, "rpd": 5, "tpm": 550, "tpd": 550}
        assert {name: w.limit for name, w in windows.items()} == {"rpm": 10, "rpd": 1_000, "tpm": 10_000,
                                                                   "tpd": 100_000}
        # A lone member's part is the fleet's whole use; without a fleet there are no parts (None).
        assert all(w.own in (None, w.used) for w in windows.values())
        assert quota.remaining() == {name: w.limit - w.used for name, w in windows.items()}
        for reservation in flying:
            quota.settle(reservation, 200)
        assert quota.in_flight == 0
