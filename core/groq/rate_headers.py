"""Groq's rate-limit wire formats: Go durations, `x-ratelimit-*` headers, 429 bodies.

Pure parsing, no state. Malformed values never crash a caller: header fields
that cannot be read become None, a 429 body that names no limit gives None.
`parse_go_duration` alone raises (a `ValueError` naming the bad text), because
a caller handing it a duration wants to know when it is not one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Dimension = Literal["rpm", "rpd", "tpm", "tpd"]
DIMENSIONS: tuple[Dimension, ...] = ("rpm", "rpd", "tpm", "tpd")

# Go's time.ParseDuration units, in seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# "ms" comes before "m" so that 400ms is not read as 400 minutes and a stray "s".
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_TEXT = 64


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration such as `2m59.56s`, `7.66s`, `400ms` or `1h2m3s`."""
    if not isinstance(text, str):
        raise ValueError(f"a Go duration must be text, not {type(text).__name__}")
    raw = text.strip()
    if not raw or len(raw) > _MAX_TEXT:
        raise ValueError(f"{text[:_MAX_TEXT]!r} is not a Go duration (expected e.g. 2m59.56s, 7.66s, 400ms)")
    if raw == "0":
        return 0.0
    sign = 1.0
    if raw[0] in "+-":
        sign = -1.0 if raw[0] == "-" else 1.0
        raw = raw[1:]
    total = 0.0
    position = 0
    for match in _PART.finditer(raw):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(raw) or position == 0:
        raise ValueError(f"{text!r} is not a Go duration (expected e.g. 2m59.56s, 7.66s, 400ms)")
    return sign * total


def format_go_duration(seconds: float) -> str:
    """A duration the way Go prints it: `2m59.56s`, `7.66s`, `400ms`, `0s`."""
    if not math.isfinite(seconds):
        raise ValueError(f"{seconds!r} seconds cannot be written as a Go duration")
    if seconds < 0:
        return "-" + format_go_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        millis = round(seconds * 1000, 3)
        if millis >= 1:
            return f"{_trim(millis)}ms"
        return f"{_trim(round(seconds * 1e6, 3))}µs"
    # Work in milliseconds so rounding cannot produce "60s" or "59.999999s".
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return text + f"{_trim(millis / 1000)}s"


def _trim(value: float) -> str:
    """A number without trailing zeros: 7.660 -> '7.66', 3.0 -> '3'."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class RateLimitHeaders:
    """Groq's `x-ratelimit-*` headers: requests are the day's, tokens the minute's."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None  # seconds until the day's requests replenish
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None  # seconds until the minute's tokens replenish
    retry_after: float | None = None  # seconds, from `retry-after` (429s)

    @property
    def empty(self) -> bool:
        """True when the response carried none of these headers."""
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """Read the rate-limit headers of one response; unreadable values become None."""
    lowered = {str(k).lower(): v for k, v in headers.items()}
    retry_after = _seconds(lowered.get("retry-after"))
    if retry_after is None:
        millis = _number(lowered.get("retry-after-ms"))
        retry_after = None if millis is None else millis / 1000
    return RateLimitHeaders(
        limit_requests=_count(lowered.get("x-ratelimit-limit-requests")),
        remaining_requests=_count(lowered.get("x-ratelimit-remaining-requests")),
        reset_requests=_duration(lowered.get("x-ratelimit-reset-requests")),
        limit_tokens=_count(lowered.get("x-ratelimit-limit-tokens")),
        remaining_tokens=_count(lowered.get("x-ratelimit-remaining-tokens")),
        reset_tokens=_duration(lowered.get("x-ratelimit-reset-tokens")),
        retry_after=retry_after,
    )


def _number(value: str | None) -> float | None:
    """A finite, non-negative number, or None."""
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _count(value: str | None) -> int | None:
    """A whole, non-negative number, or None."""
    number = _number(value)
    return int(number) if number is not None and number == int(number) else None


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_go_duration(str(value))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _seconds(value: str | None) -> float | None:
    """`retry-after` as Groq sends it (whole seconds), or a Go duration; else None."""
    if value is None:
        return None
    number = _number(value)
    # Groq sends whole seconds; an HTTP date (which Groq does not send) reads as None.
    return number if number is not None else _duration(value)


@dataclass(frozen=True)
class LimitExceeded:
    """The limit a 429 body names: which window, its size, the use and the ask."""

    dimension: Dimension
    limit: int
    used: int
    requested: int
    retry_in: float | None  # seconds, from "Please try again in ..."
    model: str | None = None


_BODY = re.compile(
    r"on (?:requests|tokens) per (?:minute|day) \((?P<dim>RPM|RPD|TPM|TPD)\)\s*:\s*"
    r"Limit\s+(?P<limit>[\d,]+),\s*Used\s+(?P<used>[\d,]+),\s*Requested\s+~?(?P<requested>[\d,]+)",
    re.IGNORECASE,
)
_RETRY = re.compile(r"try again in\s+(?P<wait>[0-9.]+(?:ns|us|µs|μs|ms|s|m|h)(?:[0-9.]+(?:ns|us|µs|μs|ms|s|m|h))*)",
                    re.IGNORECASE)
_MODEL = re.compile(r"for model `(?P<model>[^`]{1,200})`")
_MAX_BODY = 8_192


def parse_rate_limit_message(text: str) -> LimitExceeded | None:
    """The limit named in a Groq 429 message (or its JSON body); None if it names none."""
    if not isinstance(text, str):
        return None
    text = text[:_MAX_BODY]
    body = _BODY.search(text)
    if body is None:
        return None
    retry = _RETRY.search(text, body.end())
    model = _MODEL.search(text)
    return LimitExceeded(
        dimension=body.group("dim").lower(),  # type: ignore[arg-type]
        limit=int(body.group("limit").replace(",", "")),
        used=int(body.group("used").replace(",", "")),
        requested=int(body.group("requested").replace(",", "")),
        retry_in=_duration(retry.group("wait")) if retry else None,
        model=model.group("model") if model else None,
    )
