"""Alerts: rules over a `CoreSnapshot`, damped so a flapping metric does not flood anyone.

Like glances' events list, a condition must hold `alert_open_after` seconds
before its alert opens, an open alert is announced again only every
`alert_repeat_interval`, and it clears once the condition has stayed away for
the clear delay. Events (a 429, a failing part of the core) open at once.
Announcements (open, repeat, escalation, clear) are what the ledger records.

A metric that flaps (opens again within `alert_repeat_interval` of clearing)
is the same alert again: one row with a count, announced at most once per
repeat interval, and each time it comes back it must stay away twice as long
before it clears. An operator can acknowledge an alert (still listed, no
longer news) or silence it for a while (not announced, marked as silenced).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from medops.core.burn_rate import HOUR, burn_rates, out_words
from medops.core.clock import Clock, wall_text
from medops.core.settings.config import Settings
from medops.core.snapshot import Alert, AlertLevel, CoreSnapshot, WindowUsage

WARNING: Final[AlertLevel] = "warning"
CRITICAL: Final[AlertLevel] = "critical"
_RANK = {WARNING: 1, CRITICAL: 2}

MIN_CLEAR_AFTER = 5.0  # seconds a condition must stay away before its alert clears
KEEP_CLEARED = 900.0  # seconds a cleared alert stays in the snapshot
MAX_CLEARED = 50
SKEW_ALERT_SECONDS = 1.0  # an instance's clock this far off the store's raises an alert
RESTARTED = "store restarted"  # a window's held_why while an emptied store holds it (fleet.view)


@dataclass(frozen=True)
class Condition:
    """One rule firing for one subject at this evaluation."""

    key: str  # unique per rule and subject: "cpu", "pool_saturated:io"
    rule: str
    level: AlertLevel
    message: str
    value: float
    immediate: bool = False  # an event: open without waiting for open_after


class Rule(Protocol):
    """Looks at a snapshot and says which of its conditions hold now."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        """The conditions that hold in `snapshot`."""
        ...


def _above(value: float, warning: float) -> AlertLevel:
    """Critical halfway between the warning threshold and 100%."""
    return CRITICAL if value >= (warning + 100.0) / 2 else WARNING


class CpuRule:
    """CPU busy (of the machine, or of the cgroup's quota) over `alert_cpu_percent`."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        system = snapshot.system
        if system.sampled_at and system.cpu_percent >= settings.alert_cpu_percent:
            scope = "machine" if system.cpu_source == "host" else f"{system.cpu_source} quota"
            yield Condition("cpu", "cpu", _above(system.cpu_percent, settings.alert_cpu_percent),
                            f"CPU {system.cpu_percent:.0f}% of the {scope} "
                            f"({system.cpu_limit_cores:g} cores; threshold {settings.alert_cpu_percent:g}%)",
                            system.cpu_percent)


class MemoryRule:
    """Memory in use (of the host, or of the cgroup's limit) over `alert_memory_percent`."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        system = snapshot.system
        if system.sampled_at and system.memory_percent >= settings.alert_memory_percent:
            mib = 1024 * 1024
            yield Condition("memory", "memory", _above(system.memory_percent, settings.alert_memory_percent),
                            f"memory {system.memory_percent:.0f}% of the {system.memory_source} limit "
                            f"({system.memory_used // mib} of {system.memory_limit // mib} MiB; "
                            f"threshold {settings.alert_memory_percent:g}%)", system.memory_percent)


class QuotaRule:
    """A Groq window with less than `alert_quota_remaining_percent` left; critical when spent.

    Not while the fleet's store is away: the windows then are the local share, which counts the other members
    full on purpose (every model, every window would open), and the store's own alert says so."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        store = snapshot.quota.store
        if store is not None and store.state == "down":
            return
        held: list[tuple[str, WindowUsage]] = []  # full only because an emptied store holds them
        for model in snapshot.quota.models:
            for window in model.windows:
                if window.limit <= 0:
                    continue
                if window.held and window.held_why == RESTARTED and _low(window.limit - window.used, window,
                                                                           settings) is None:
                    if _low(window.remaining, window, settings) is not None:
                        held.append((model.model, window))
                    continue
                left = 100.0 * window.remaining / window.limit
                if left < settings.alert_quota_remaining_percent or window.remaining == 0:
                    level = CRITICAL if window.remaining == 0 else WARNING
                    yield Condition(f"quota_low:{model.model}:{window.name}", "quota_low", level,
                                    f"{model.model} {window.name}: {window.remaining:,} of {window.limit:,} left "
                                    f"({left:.0f}%), resets in {window.reset_in:.0f} s", left)
        if held:
            until = max(w.held_until for _, w in held)
            models = len({m for m, _ in held})
            yield Condition("quota_held", "quota_held", WARNING,
                            f"the quota store restarted empty: {len(held)} windows of {models} "
                            f"model{'s' if models != 1 else ''} held until "
                            f"{wall_text(until, snapshot.taken_at)} for what the old store counted",
                            float(len(held)))


def _low(left: int, window: WindowUsage, settings: Settings) -> float | None:
    """The percentage left when under `alert_quota_remaining_percent` or nothing is left; else None."""
    percent = 100.0 * left / window.limit
    return percent if percent < settings.alert_quota_remaining_percent or left <= 0 else None


class BurnRateRule:
    """A day window (rpd, tpd) that, at the last hour's pace, runs out before it frees.

    Damped as every rule is (it must hold `alert_open_after`); the pace is the organisation's on an attached
    view and on a member while the store answers ("(fleet)"), the quota's own records otherwise."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        store = snapshot.quota.store
        if store is not None and store.state == "down":
            return  # the local share's windows count the others full on purpose (as QuotaRule)
        for rate in burn_rates(snapshot.quota, snapshot.taken_at):
            if rate.runs_out_at is not None and rate.runs_out_first:
                hours = (rate.runs_out_at - snapshot.taken_at) / HOUR
                fleet = " (fleet)" if rate.fleet else ""
                yield Condition(f"burn_rate:{rate.model}:{rate.window}", "burn_rate", WARNING,
                                f"{rate.model} {rate.window}{fleet} {out_words(rate, snapshot.taken_at)} at this pace "
                                f"({rate.per_hour:,} in the last hour, {rate.remaining:,} of {rate.limit:,} left); "
                                f"it frees from {time.strftime('%H:%M', time.localtime(rate.frees_at))}", hours)


class RateLimitedRule:
    """Any 429 from Groq: opens at once and holds while the model is still blocked."""

    def __init__(self) -> None:
        self._seen: dict[str, int] | None = None  # 429 counts at the previous evaluation

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        counts = {m.model: m.rate_limited for m in snapshot.quota.models}
        # The first look only sets the baseline: counts restored at start are old news.
        seen, self._seen = self._seen if self._seen is not None else counts, counts
        for model in snapshot.quota.models:
            new = model.rate_limited - seen.get(model.model, 0)
            blocked = max((w.blocked_for for w in model.windows), default=0.0)
            if new > 0 or blocked > 0:
                yield Condition(f"rate_limited:{model.model}", "rate_limited", WARNING,
                                f"Groq answered 429 for {model.model} ({model.rate_limited} so far); "
                                f"blocked for {blocked:.0f} s more", float(model.rate_limited), immediate=True)


class QuotaStoreRule:
    """The fleet's quota store unreachable (critical: a local share applies) or its clock over 1 s off ours."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        store = snapshot.quota.store
        if store is None:
            return
        if store.state == "down":
            since = "" if store.down_since is None else \
                f" since {time.strftime('%H:%M:%S', time.localtime(store.down_since))}"
            share = f"local share 1/{store.share}" if store.share else "nothing admitted until it answers"
            yield Condition("quota_store", "quota_store", CRITICAL,
                            f"quota store {store.url} unreachable{since}; {share}", float(store.share),
                            immediate=True)
        if abs(store.clock_skew) > SKEW_ALERT_SECONDS:
            yield Condition("clock_skew", "clock_skew", WARNING,
                            f"this machine's clock is {store.clock_skew:+.1f} s off the quota store's; windows run "
                            "on the store's clock, but fix the time sync (chrony, systemd-timesyncd)",
                            store.clock_skew)


class SlotsRule:
    """Case slots over `alert_slots_percent` full; critical when none is free."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        slots = snapshot.slots
        if slots.total <= 0:
            return
        full = 100.0 * slots.used / slots.total
        if full >= settings.alert_slots_percent:
            yield Condition("slots", "slots", CRITICAL if slots.free == 0 else WARNING,
                            f"case slots {full:.0f}% full ({slots.used:,} of {slots.total:,}; "
                            f"threshold {settings.alert_slots_percent:g}%)", full)


class PoolSaturatedRule:
    """A pool with every worker busy and work waiting."""

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        for pool in snapshot.pools:
            if pool.capacity > 0 and pool.active >= pool.capacity and pool.queued > 0:
                yield Condition(f"pool_saturated:{pool.name}", "pool_saturated", WARNING,
                                f"pool {pool.name} saturated: {pool.active} of {pool.capacity} busy, "
                                f"{pool.queued} waiting (p95 wait {pool.wait_p95 * 1000:.0f} ms)",
                                float(pool.queued))


class LoopLagRule:
    """The event loop late on more than one wake-up in the window by `alert_loop_lag_ms`; critical at ten times that.

    p99 of the window's probes, not the single worst: one stall (a busy 2-core host, a collection) made the
    alert open and clear every half minute. A single stall of ten times the threshold still warns. Nothing
    while the knowledge base is being built: that is the core's start, not a stall.
    """

    def check(self, snapshot: CoreSnapshot, settings: Settings) -> Iterable[Condition]:
        system = snapshot.system
        if snapshot.knowledge.state == "building":
            return
        threshold = settings.alert_loop_lag_ms
        sustained = system.loop_lag_ms >= threshold
        one_long_stall = system.loop_lag_max_ms >= 10 * threshold
        if not (sustained or one_long_stall):
            return
        level = CRITICAL if system.loop_lag_ms >= 10 * threshold else WARNING
        what = (f"event loop late by {system.loop_lag_ms:.0f} ms or more on several wake-ups" if sustained
                else f"event loop stalled once for {system.loop_lag_max_ms:.0f} ms")
        yield Condition("loop_lag", "loop_lag", level,
                        f"{what} (p99 {system.loop_lag_ms:.0f} ms, max {system.loop_lag_max_ms:.0f} ms; "
                        f"threshold {threshold:g} ms): something blocks the loop", system.loop_lag_ms)


def default_rules() -> list[Rule]:
    """The rules the config's alert_* settings drive."""
    return [CpuRule(), MemoryRule(), QuotaRule(), BurnRateRule(), RateLimitedRule(), QuotaStoreRule(), SlotsRule(),
            PoolSaturatedRule(), LoopLagRule()]


@dataclass
class _Track:
    """Damping state of one alert key."""

    since: float  # monotonic time the condition was first seen (this run)
    alert: Alert | None = None  # set once open
    announced_at: float = 0.0  # monotonic time of the last announcement
    away_since: float | None = None  # monotonic time the condition was last seen gone
    returns: int = 0  # times it opened again soon after clearing: each doubles the clear delay


@dataclass(frozen=True)
class _Cleared:
    """An alert that cleared recently: if it comes back soon, it is the same alert again."""

    alert: Alert
    at: float  # monotonic time it cleared
    announced_at: float
    returns: int


class AlertEngine:
    """Evaluates rules over snapshots and keeps open and recently cleared alerts."""

    def __init__(self, clock: Clock, rules: list[Rule] | None = None, *,
                 min_clear_after: float = MIN_CLEAR_AFTER, keep_cleared: float = KEEP_CLEARED) -> None:
        self._clock = clock
        self._rules = rules if rules is not None else default_rules()
        self._min_clear_after = min_clear_after
        self._keep_cleared = keep_cleared
        self._tracks: dict[str, _Track] = {}
        self._cleared: collections.deque[Alert] = collections.deque(maxlen=MAX_CLEARED)
        self._recent: dict[str, _Cleared] = {}  # by key: cleared, and may come back as the same alert
        self._silenced: dict[str, float] = {}  # key -> wall time until which it is not announced
        self._acknowledged: set[str] = set()
        self._failures: list[Condition] = []

    def acknowledge(self, name: str) -> bool:
        """Mark the open alert `name` as seen; False if no such alert is open."""
        track = self._tracks.get(name)
        if track is None or track.alert is None:
            return False
        self._acknowledged.add(name)
        track.alert = dataclasses.replace(track.alert, acknowledged=True)
        return True

    def silence(self, name: str, seconds: float) -> float:
        """Announce nothing about `name` for `seconds` (0 lifts it); returns the wall time it ends."""
        until = self._clock.wall() + max(0.0, seconds)
        if seconds <= 0:
            self._silenced.pop(name, None)
        else:
            self._silenced[name] = until
        track = self._tracks.get(name)
        if track is not None and track.alert is not None:
            track.alert = dataclasses.replace(track.alert, silenced_until=until if seconds > 0 else None)
        return until

    def note_failure(self, part: str, error: BaseException) -> None:
        """A part of the core failed during a tick: raise it at the next evaluation."""
        # Only the type: an exception's text may quote data we must not show.
        self._failures.append(Condition(f"internal:{part}", "internal", WARNING,
                                        f"{part} failed in the core's tick ({type(error).__name__}); "
                                        "the tick goes on, see the log for details", 1.0, immediate=True))

    def evaluate(self, snapshot: CoreSnapshot, settings: Settings) -> list[Alert]:
        """Apply the rules to `snapshot`; return the announcements this made (for the ledger)."""
        now, wall = self._clock.monotonic(), self._clock.wall()
        conditions: dict[str, Condition] = {}
        for rule in self._rules:
            for condition in rule.check(snapshot, settings):
                conditions[condition.key] = condition
        for failure in self._failures:
            conditions[failure.key] = failure
        self._failures = []

        announced: list[Alert] = []
        for key, until in list(self._silenced.items()):
            if until <= wall:
                del self._silenced[key]
        for key, condition in conditions.items():
            track = self._tracks.setdefault(key, _Track(since=now))
            track.away_since = None
            alert = track.alert
            if alert is None:
                if condition.immediate or now - track.since >= settings.alert_open_after:
                    self._open(key, track, condition, now, wall, settings, announced)
                continue
            escalated = _RANK[condition.level] > _RANK[alert.level]
            repeat = now - track.announced_at >= settings.alert_repeat_interval
            alert = dataclasses.replace(alert, level=condition.level, message=condition.message,
                                        value=condition.value, silenced_until=self._silenced.get(key))
            if escalated or repeat:
                alert = dataclasses.replace(alert, repeats=alert.repeats + (0 if escalated else 1), updated_at=wall)
                track.announced_at = now
                self._announce(alert, announced)
            track.alert = alert

        base_clear = max(settings.alert_open_after, self._min_clear_after)
        for key in [k for k in self._tracks if k not in conditions]:
            track = self._tracks[key]
            if track.alert is None:
                del self._tracks[key]  # never opened: a blip, forgotten
                continue
            if track.away_since is None:
                track.away_since = now
            clear_after = min(max(base_clear, settings.alert_repeat_interval), base_clear * 2 ** track.returns)
            if now - track.away_since >= clear_after:
                cleared = dataclasses.replace(track.alert, cleared_at=wall, updated_at=wall)
                self._cleared.appendleft(cleared)
                self._recent[key] = _Cleared(cleared, now, track.announced_at, track.returns)
                self._announce(cleared, announced)
                self._acknowledged.discard(key)
                del self._tracks[key]
        for key in [k for k, c in self._recent.items() if now - c.at > settings.alert_repeat_interval]:
            del self._recent[key]
        return announced

    def _open(self, key: str, track: _Track, condition: Condition, now: float, wall: float, settings: Settings,
              announced: list[Alert]) -> None:
        """Open `key`'s alert, or, when it cleared less than a repeat interval ago, the same alert again."""
        back = self._recent.pop(key, None)
        if back is None:
            track.alert = Alert(name=key, rule=condition.rule, level=condition.level, message=condition.message,
                                value=condition.value, opened_at=wall, updated_at=wall,
                                silenced_until=self._silenced.get(key))
            track.announced_at = now
            self._announce(track.alert, announced)
            return
        # A flap: one alert with a count, its first opening kept; news only once per repeat interval.
        with_it = [a for a in self._cleared if not (a.name == key and a.opened_at == back.alert.opened_at)]
        self._cleared = collections.deque(with_it, maxlen=MAX_CLEARED)
        track.returns = back.returns + 1
        track.alert = dataclasses.replace(back.alert, level=condition.level, message=condition.message,
                                          value=condition.value, cleared_at=None, repeats=back.alert.repeats + 1,
                                          updated_at=wall, acknowledged=False,
                                          silenced_until=self._silenced.get(key))
        track.announced_at = back.announced_at
        if now - back.announced_at >= settings.alert_repeat_interval:
            track.announced_at = now
            self._announce(track.alert, announced)

    def _announce(self, alert: Alert, announced: list[Alert]) -> None:
        """Record an announcement, unless the operator silenced this alert."""
        if alert.name not in self._silenced:
            announced.append(alert)

    def alerts(self) -> tuple[Alert, ...]:
        """Open alerts and those cleared recently, newest first."""
        horizon = self._clock.wall() - self._keep_cleared
        recent = [a for a in self._cleared if a.cleared_at is not None and a.cleared_at >= horizon]
        open_now = [t.alert for t in self._tracks.values() if t.alert is not None]
        return tuple(sorted(open_now + recent, key=lambda a: a.opened_at, reverse=True))
