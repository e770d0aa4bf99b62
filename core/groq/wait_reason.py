"""Why a queued Groq request waits, in words an on-call engineer can act on, with when the wait ends.

Pure functions over figures the scheduler already has (a model's quota snapshot,
its wait for the request's tokens, the concurrency in use), so the words are
tested without a scheduler. Never the request's text: ids, figures and names only.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

from medops.core.snapshot import ModelQuota

_COUNTS_TOKENS = {"rpm": False, "rpd": False, "tpm": True, "tpd": True}


class Wait(NamedTuple):
    """A reason in words and the wall time it ends (None: not known, or not a matter of time)."""

    reason: str
    until: float | None = None


def clock_time(wall: float) -> str:
    """A wall time as the console shows it: HH:MM:SS local time."""
    return time.strftime("%H:%M:%S", time.localtime(wall))


def seconds(value: float) -> str:
    """A short duration in whole seconds (at least 1 while any is left)."""
    return f"{max(1, math.ceil(value)):,} s"


def quota_wait(quota: ModelQuota, tokens: int, wait: float, now_wall: float) -> Wait | None:
    """What in a model's quota keeps `tokens` out: a capacity hold (498), a 429's block, a full window; None
    when the quota has room (then something else holds the request). `wait` is the quota's own wait for it."""
    if quota.capacity_hold > 0:
        return Wait(f"model held (498) for {seconds(quota.capacity_hold)}", now_wall + quota.capacity_hold)
    blocked = [w for w in quota.windows if w.blocked_for > 0]
    if blocked:
        longest = max(blocked, key=lambda w: w.blocked_for)
        return Wait(f"{longest.name} blocked by a 429 for {seconds(longest.blocked_for)}",
                    now_wall + longest.blocked_for)
    full = [w for w in quota.windows
            if w.used + (tokens if _COUNTS_TOKENS.get(w.name, False) else 1) > w.limit]
    if not full and wait <= 0:
        return None
    name = full[0].name if full else "quota"
    if not math.isfinite(wait) or wait <= 0:
        return Wait(f"{name} full")
    until = now_wall + wait
    return Wait(f"{name} full until {clock_time(until)}", until)


def behind(counts: dict[str, int], fleet: bool = False) -> str:
    """"behind 3 critical, 1 high": the requests for the same model that go first, by the class they compete in."""
    named = [f"{n} {label}" for label, n in counts.items() if n]
    return f"behind {', '.join(named)}" + (" (fleet)" if fleet else "") if named else ""
