"""Groq's rate-limit formats: Go durations, x-ratelimit-* headers and 429 bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medops.core.groq.rate_headers import (
    LimitExceeded,
    RateLimitHeaders,
    format_go_duration,
    parse_go_duration,
    parse_rate_limit_headers,
    parse_rate_limit_message,
)

TPD_BODY = ("Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01abc` service tier "
            "`on_demand` on tokens per day (TPD): Limit 100000, Used 97050, Requested 3619. "
            "Please try again in 9m38.016s. Need more tokens? Upgrade to Dev Tier today at "
            "https://console.groq.com/settings/billing")


@pytest.mark.parametrize(("text", "seconds"), [
    ("2m59.56s", 179.56),
    ("7.66s", 7.66),
    ("400ms", 0.4),
    ("1h2m3s", 3723.0),
    ("0s", 0.0),
    ("0", 0.0),
    ("9m38.016s", 578.016),
    ("1.5h", 5400.0),
    ("250us", 0.00025),
    ("250µs", 0.00025),
    ("12ns", 12e-9),
    ("-1.5s", -1.5),
    (" 3s ", 3.0),
])
def test_go_durations_are_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "3", "3x", "1h-2m", "m3s", "3s5", "abc", "1..2s", "x" * 100])
def test_malformed_go_durations_raise_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_go_duration(text)


def test_a_non_text_duration_raises_a_value_error_not_a_type_error() -> None:
    with pytest.raises(ValueError, match="must be text"):
        parse_go_duration(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds", "text"), [
    (179.56, "2m59.56s"),
    (7.66, "7.66s"),
    (0.4, "400ms"),
    (3723.0, "1h2m3s"),
    (0.0, "0s"),
    (60.0, "1m0s"),
    (59.9999, "1m0s"),
    (0.0005, "500µs"),
    (-2.5, "-2.5s"),
])
def test_durations_are_written_the_way_go_writes_them(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


@given(st.floats(min_value=0.001, max_value=10 * 86_400, allow_nan=False))
def test_formatting_then_parsing_gives_back_the_duration_to_the_millisecond(seconds: float) -> None:
    assert parse_go_duration(format_go_duration(seconds)) == pytest.approx(seconds, abs=0.0006)


def test_format_refuses_infinity() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        format_go_duration(float("inf"))


def test_groq_headers_are_read_with_requests_per_day_and_tokens_per_minute() -> None:
    headers = parse_rate_limit_headers({
        "X-RateLimit-Limit-Requests": "14400",
        "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "5997",
        "x-ratelimit-reset-tokens": "7.66s",
        "retry-after": "7",
        "content-type": "application/json",
    })
    assert headers == RateLimitHeaders(14400, 14370, pytest.approx(179.56), 6000, 5997,
                                       pytest.approx(7.66), 7.0)
    assert not headers.empty


def test_a_response_without_rate_limit_headers_reads_as_empty() -> None:
    headers = parse_rate_limit_headers({"content-type": "application/json"})
    assert headers == RateLimitHeaders()
    assert headers.empty


def test_malformed_header_values_become_none_and_the_rest_is_kept() -> None:
    headers = parse_rate_limit_headers({
        "x-ratelimit-limit-requests": "lots",
        "x-ratelimit-remaining-requests": "-3",
        "x-ratelimit-reset-requests": "soon",
        "x-ratelimit-limit-tokens": "6000.5",
        "x-ratelimit-remaining-tokens": "nan",
        "x-ratelimit-reset-tokens": "-1s",
        "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT",
    })
    assert headers == RateLimitHeaders()


def test_retry_after_accepts_fractions_and_milliseconds() -> None:
    assert parse_rate_limit_headers({"retry-after": "1.5"}).retry_after == 1.5
    assert parse_rate_limit_headers({"retry-after-ms": "250"}).retry_after == 0.25
    assert parse_rate_limit_headers({"retry-after": "2m"}).retry_after == 120.0


def test_the_429_body_names_the_limit_the_use_the_ask_and_the_wait() -> None:
    assert parse_rate_limit_message(TPD_BODY) == LimitExceeded(
        dimension="tpd", limit=100000, used=97050, requested=3619, retry_in=pytest.approx(578.016),
        model="llama-3.3-70b-versatile")


def test_the_429_body_is_found_inside_groq_json_error() -> None:
    body = json.dumps({"error": {"message": TPD_BODY.replace("day (TPD)", "minute (TPM)"),
                                 "type": "tokens", "code": "rate_limit_exceeded"}})
    parsed = parse_rate_limit_message(body)
    assert parsed is not None
    assert parsed.dimension == "tpm"
    assert parsed.requested == 3619


def test_a_requests_per_minute_429_without_a_wait_reads_retry_in_as_none() -> None:
    text = "Rate limit reached for model `m` on requests per minute (RPM): Limit 30, Used 30, Requested 1."
    assert parse_rate_limit_message(text) == LimitExceeded("rpm", 30, 30, 1, None, "m")


@pytest.mark.parametrize("text", ["", "Internal error", "on tokens per day (TPD): Limit many", "x" * 100_000])
def test_a_body_that_names_no_limit_gives_none(text: str) -> None:
    assert parse_rate_limit_message(text) is None


def test_a_non_text_body_gives_none() -> None:
    assert parse_rate_limit_message(None) is None  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_no_text_crashes_the_parsers(text: str) -> None:
    parse_rate_limit_message(text)
    parse_rate_limit_headers({"x-ratelimit-reset-tokens": text, "retry-after": text,
                              "x-ratelimit-remaining-tokens": text})
