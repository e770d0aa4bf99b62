"""Groq's rate-limit and retry headers, computed from the fleet's windows of one model.

Groq's `x-ratelimit-*-requests` describe the day's requests (RPD) and
`x-ratelimit-*-tokens` the minute's tokens (TPM); agents that read them see the
organisation's windows, not one member's. A 429's `retry-after` is when the
quota frees, never a constant; a spent day window also says `x-should-retry: false`.
"""

from __future__ import annotations

import math

from medops.core.groq.rate_headers import format_go_duration
from medops.core.snapshot import ModelQuota, WindowUsage

DAY_WINDOWS = ("rpd", "tpd")
FLOOR = 0.1  # seconds: the least a retry-after says, so a client never retries in a busy loop


def rate_limit_headers(quota: ModelQuota | None) -> dict[str, str]:
    """Groq's six `x-ratelimit-*` headers for one model (none when its windows are unknown)."""
    if quota is None:
        return {}
    windows = {w.name: w for w in quota.windows}
    headers: dict[str, str] = {}
    for suffix, name in (("requests", "rpd"), ("tokens", "tpm")):
        window = windows.get(name)
        if window is not None:
            headers[f"x-ratelimit-limit-{suffix}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{suffix}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{suffix}"] = format_go_duration(round(max(0.0, window.reset_in), 3))
    return headers


def _spent(window: WindowUsage) -> bool:
    return window.remaining <= 0 or window.blocked_for > 0


def frees_in(quota: ModelQuota | None) -> float | None:
    """Seconds until every spent (or 429-blocked) window of the model has room again; None if none is spent."""
    if quota is None:
        return None
    waits = [max(w.reset_in, w.blocked_for) for w in quota.windows if _spent(w)]
    return max(waits) if waits else None


def day_spent(quota: ModelQuota | None) -> bool:
    """Whether a day window is spent: retrying within minutes cannot help."""
    return quota is not None and any(w.name in DAY_WINDOWS and w.remaining <= 0 for w in quota.windows)


def retry_headers(seconds: float, *, day_window_spent: bool = False) -> dict[str, str]:
    """`retry-after` (whole seconds, rounded up, as HTTP has it) and `retry-after-ms`; `x-should-retry: false`
    when a day window is spent, so SDKs do not retry into it."""
    seconds = max(FLOOR, seconds)
    headers = {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(math.ceil(seconds * 1000))}
    if day_window_spent:
        headers["x-should-retry"] = "false"
    return headers
