"""The gateway's rate-limit and retry headers, from the fleet's windows."""

from __future__ import annotations

from medops.core.gateway.headers import day_spent, frees_in, rate_limit_headers, retry_headers
from medops.core.snapshot import ModelQuota, WindowUsage

MODEL = "llama-3.1-8b-instant"


def quota(rpm: int = 3, rpd: int = 100, tpm: int = 500, tpd: int = 9_000, blocked: float = 0.0) -> ModelQuota:
    return ModelQuota(MODEL, (WindowUsage("rpm", rpm, 30, 12.5, blocked_for=blocked),
                              WindowUsage("rpd", rpd, 14_400, 3_600.0), WindowUsage("tpm", tpm, 6_000, 7.66),
                              WindowUsage("tpd", tpd, 500_000, 80_000.0)))


def test_groq_headers_give_the_days_requests_and_the_minutes_tokens() -> None:
    assert rate_limit_headers(quota()) == {
        "x-ratelimit-limit-requests": "14400", "x-ratelimit-remaining-requests": "14300",
        "x-ratelimit-reset-requests": "1h0m0s",
        "x-ratelimit-limit-tokens": "6000", "x-ratelimit-remaining-tokens": "5500",
        "x-ratelimit-reset-tokens": "7.66s"}
    assert rate_limit_headers(None) == {}


def test_retry_after_is_when_the_spent_windows_free_not_a_constant() -> None:
    assert frees_in(quota()) is None
    assert frees_in(quota(rpm=30)) == 12.5
    assert frees_in(quota(rpm=30, tpm=6_000)) == 12.5  # both must free: the later one
    assert frees_in(quota(blocked=20.0)) == 20.0  # a 429 from Groq blocks its window for its retry-after
    assert retry_headers(12.5) == {"retry-after": "13", "retry-after-ms": "12500"}


def test_a_spent_day_window_tells_sdks_not_to_retry() -> None:
    assert not day_spent(quota(rpm=30))
    assert day_spent(quota(rpd=14_400))
    assert retry_headers(3_600.0, day_window_spent=True)["x-should-retry"] == "false"
