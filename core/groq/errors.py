"""The sender's errors: what one HTTP attempt at Groq can end in, and whether retrying may help."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medops.core.errors import GroqError
from medops.core.groq.rate_headers import LimitExceeded, RateLimitHeaders, format_go_duration


class RateLimited(GroqError):
    """Groq answered 429: wait `retry_after` seconds; `limit` says which window, if the body said."""

    def __init__(self, retry_after: float | None, limit: LimitExceeded | None = None,
                 headers: RateLimitHeaders | None = None) -> None:
        self.retry_after = retry_after
        self.limit = limit
        self.headers = headers or RateLimitHeaders()
        which = f" on {limit.dimension} (limit {limit.limit}, used {limit.used}, requested {limit.requested})" \
            if limit else ""
        wait = f"retry in {format_go_duration(retry_after)}" if retry_after is not None else "no retry time given"
        super().__init__(f"Groq rate limit reached{which}; {wait}")


class RequestRejected(GroqError):
    """Groq refused the request itself (400/401/403/404/413); retrying cannot help.

    `body` is Groq's own error body, for a caller that passes the refusal on as Groq gave it (the gateway)."""

    def __init__(self, status: int, reason: str, body: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        super().__init__(f"Groq refused the request (HTTP {status}): {reason}")


class StreamBrokeOff(GroqError):
    """A streamed answer failed after some of it was handed on: not retried, the listener has those pieces."""


class CapacityExceeded(GroqError):
    """Groq is over capacity for this model (HTTP 498): a signal to hold off, then retry."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class UpstreamUnavailable(GroqError):
    """Groq could not be reached or failed (5xx, timeout, connection error); `reason` is the last failure.

    The sender raises it for one attempt (`attempts` 1); the scheduler retries, and tells the
    caller with the attempt count once retries or the deadline run out."""

    def __init__(self, message: str, reason: str | None = None, attempts: int = 1,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message
        self.attempts = attempts
        self.status = status  # the last HTTP status, if the failure was one


class TimedOut(UpstreamUnavailable):
    """An attempt got no answer within its time (request_timeout): apart from a 5xx, as an operator tells
    a slow endpoint from a failing one."""


class NeverSent(UpstreamUnavailable):
    """The attempt never reached Groq: the connection was refused, its name did not resolve, TLS failed,
    or no connection came within the attempt's time. Nothing was counted there, so its quota is given back."""
