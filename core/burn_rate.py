"""Burn rate: how fast each day window (rpd, tpd) is being spent, and when it runs out at that pace.

The pace is what entered the window in the last hour (`WindowUsage.last_hour`: the
quota's own records, or on a fleet the store's buckets of the organisation). At
that pace the room left lasts `remaining / pace` hours; when that falls before the
window's oldest use leaves it (when it frees), the window will be spent first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from medops.core.snapshot import ModelQuota, QuotaSnapshot, WindowUsage

HOUR = 3_600.0
DAY_WINDOWS = ("rpd", "tpd")


@dataclass(frozen=True)
class BurnRate:
    """One day window's pace over the last hour and when it runs out at that pace (wall times)."""

    model: str
    window: str
    per_hour: int  # requests or tokens that entered the window in the last hour
    remaining: int
    limit: int
    runs_out_at: float | None  # None: nothing used in the last hour, so at this pace it never runs out
    frees_at: float  # when the window's oldest use leaves it

    @property
    def runs_out_first(self) -> bool:
        """At this pace the window is spent before it frees."""
        return self.runs_out_at is not None and self.runs_out_at < self.frees_at


def project(model: str, window: WindowUsage, now: float) -> BurnRate | None:
    """`window`'s burn rate at wall time `now`; None for a minute window, no limit, or a pace not known."""
    if window.name not in DAY_WINDOWS or window.last_hour is None or window.limit <= 0:
        return None
    pace = max(0, window.last_hour)
    runs_out_at = now + window.remaining / pace * HOUR if pace else None
    return BurnRate(model, window.name, pace, window.remaining, window.limit, runs_out_at, now + window.reset_in)


def in_use(quota: QuotaSnapshot) -> list[ModelQuota]:
    """The default model and every model with anything in its windows."""
    return [m for m in quota.models if m.model == quota.default_model or any(w.used for w in m.windows)]


def burn_rates(quota: QuotaSnapshot, now: float) -> list[BurnRate]:
    """The burn rate of every day window of every model in use whose pace is known."""
    rates = (project(model.model, window, now) for model in in_use(quota) for window in model.windows)
    return [rate for rate in rates if rate is not None]


def out_words(rate: BurnRate, now: float) -> str:
    """"out at 21:40" (local time), "out now", "lasts over a day", or "nothing used in the last hour"."""
    if rate.runs_out_at is None:
        return "nothing used in the last hour"
    if rate.runs_out_at <= now:
        return "out now"
    if rate.runs_out_at - now >= 24 * HOUR:
        return "lasts over a day"
    return f"out at {time.strftime('%H:%M', time.localtime(rate.runs_out_at))}"
