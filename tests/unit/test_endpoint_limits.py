"""The local endpoint's sliding windows, on a fake clock."""

from __future__ import annotations

import pytest

from medops.core.clock import FakeClock
from medops.core.groq.local.windows import Admission, EndpointLimiter, Refusal
from medops.core.settings.config import ModelLimits

MODEL = "m"


def limiter(clock: FakeClock, **limits: int) -> EndpointLimiter:
    values = {"rpm": 30, "rpd": 1_000, "tpm": 100_000, "tpd": 1_000_000} | limits
    return EndpointLimiter({MODEL: ModelLimits(**values)}, clock)


async def test_a_window_never_admits_more_than_its_limit_in_any_60_seconds(clock: FakeClock) -> None:
    windows = limiter(clock, rpm=30)
    admitted_at: list[float] = []
    for _ in range(600):  # one attempt every 0.5 s for 5 minutes
        if isinstance(windows.admit(MODEL, 1), Admission):
            admitted_at.append(clock.monotonic())
        await clock.advance(0.5)
    for start in admitted_at:
        assert sum(1 for t in admitted_at if start <= t < start + 60) <= 30
    assert len(admitted_at) == 150  # 30 a minute, not the 45 a fixed window would let through


async def test_refusal_waits_exactly_until_the_oldest_admission_leaves(clock: FakeClock) -> None:
    windows = limiter(clock, rpm=2)
    windows.admit(MODEL, 1)
    await clock.advance(20)
    windows.admit(MODEL, 1)
    await clock.advance(5)
    refusal = windows.admit(MODEL, 1)
    assert refusal == Refusal("rpm", 2, 2, 1, pytest.approx(35.0))
    await clock.advance(35)
    assert isinstance(windows.admit(MODEL, 1), Admission)


async def test_tokens_wait_until_enough_have_left(clock: FakeClock) -> None:
    windows = limiter(clock, tpm=1_000)
    windows.admit(MODEL, 600)
    await clock.advance(10)
    windows.admit(MODEL, 300)
    refusal = windows.admit(MODEL, 500)
    assert isinstance(refusal, Refusal) and refusal.dimension == "tpm"
    assert (refusal.used, refusal.requested, refusal.retry_in) == (900, 500, pytest.approx(50.0))


async def test_settling_frees_the_unused_reservation(clock: FakeClock) -> None:
    windows = limiter(clock, tpm=1_000)
    admission = windows.admit(MODEL, 900)
    assert isinstance(admission, Admission)
    assert isinstance(windows.admit(MODEL, 200), Refusal)
    windows.settle(admission, 100)
    assert isinstance(windows.admit(MODEL, 200), Admission)
    assert windows.headers(MODEL)["x-ratelimit-remaining-tokens"] == "700"


async def test_refusal_names_the_window_with_the_longest_wait(clock: FakeClock) -> None:
    windows = limiter(clock, rpm=1, rpd=1)
    windows.admit(MODEL, 1)
    refusal = windows.admit(MODEL, 1)
    assert isinstance(refusal, Refusal) and refusal.dimension == "rpd"
    assert refusal.retry_in == pytest.approx(86_400)


async def test_headers_report_the_day_requests_and_the_minute_tokens(clock: FakeClock) -> None:
    windows = limiter(clock, rpd=10, tpm=500)
    windows.admit(MODEL, 120)
    await clock.advance(61)
    windows.admit(MODEL, 80)
    headers = windows.headers(MODEL)
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-remaining-requests"] == "8"  # both still in the day
    assert headers["x-ratelimit-limit-tokens"] == "500"
    assert headers["x-ratelimit-remaining-tokens"] == "420"  # only the second in the minute
    assert headers["x-ratelimit-reset-tokens"] == "1m0s"
    assert headers["x-ratelimit-reset-requests"] == "24h0m0s"


async def test_an_admission_holds_its_window_for_the_whole_minute_after_arrival(clock: FakeClock) -> None:
    windows = limiter(clock, rpm=1)
    windows.admit(MODEL, 1)
    await clock.advance(59.999)
    assert isinstance(windows.admit(MODEL, 1), Refusal)
    await clock.advance(0.001)
    assert isinstance(windows.admit(MODEL, 1), Admission)
