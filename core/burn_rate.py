"""Burn rate: how fast each day window (rpd, tpd) is being spent, and when it runs out at that pace.

The pace is what entered the window in the last hour (`WindowUsage.last_hour`: the
quota's own records, or on a fleet the store's buckets of the organisation: an attached
view reads them with the fleet, a member every few heartbeats, `fleet_paced`). At
that pace the room left lasts `remaining / pace` hours; when that falls before the
window's oldest use leaves it (when it frees), the window will be spent first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

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
    fleet: bool = False  # the organisation's windows and pace (the fleet's store), not this core's own

    @property
    def runs_out_first(self) -> bool:
        """At this pace the window is spent before it frees."""
        return self.runs_out_at is not None and self.runs_out_at < self.frees_at


def project(model: str, window: WindowUsage, now: float, fleet: bool = False) -> BurnRate | None:
    """`window`'s burn rate at wall time `now`; None for a minute window, no limit, or a pace not known."""
    if window.name not in DAY_WINDOWS or window.last_hour is None or window.limit <= 0:
        return None
    pace = max(0, window.last_hour)
    runs_out_at = now + window.remaining / pace * HOUR if pace else None
    return BurnRate(model, window.name, pace, window.remaining, window.limit, runs_out_at, now + window.reset_in,
                    fleet)


def on_fleet(quota: QuotaSnapshot) -> bool:
    """The windows are the fleet's as its store counts them: a member while the store answers, or an attached
    view (a member cut off from the store runs on its own share: its own windows)."""
    return quota.store is not None and quota.store.state == "up"


def fleet_paced(quota: QuotaSnapshot, pace: Mapping[str, tuple[int, int]]) -> QuotaSnapshot:
    """A fleet member's windows with the organisation's pace (model -> requests, tokens in the last hour, as its
    last reading of the store's buckets found) in their day windows, while the store answers; else as they are
    (its own windows, its own pace)."""
    if not on_fleet(quota) or not pace:
        return quota

    def paced(model: ModelQuota) -> ModelQuota:
        if model.model not in pace:
            return model
        requests, tokens = pace[model.model]
        return replace(model, windows=tuple(
            replace(w, last_hour=requests if w.name == "rpd" else tokens) if w.name in DAY_WINDOWS else w
            for w in model.windows))

    return replace(quota, models=tuple(paced(m) for m in quota.models))


def in_use(quota: QuotaSnapshot) -> list[ModelQuota]:
    """The default model and every model with anything in its windows."""
    return [m for m in quota.models if m.model == quota.default_model or any(w.used for w in m.windows)]


def burn_rates(quota: QuotaSnapshot, now: float) -> list[BurnRate]:
    """The burn rate of every day window of every model in use whose pace is known."""
    fleet = on_fleet(quota)
    rates = (project(model.model, window, now, fleet) for model in in_use(quota) for window in model.windows)
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
