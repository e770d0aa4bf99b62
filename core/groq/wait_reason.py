"""Why a queued Groq request waits, in words an on-call engineer can act on, with when the wait ends.

Pure functions over figures the scheduler already has (a model's quota snapshot,
its wait for the request's tokens, the concurrency in use), so the words are
tested without a scheduler. Never the request's text: ids, figures and names only.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import NamedTuple

from medops.core.inert_text import name
from medops.core.snapshot import CoreSnapshot, ModelQuota

_COUNTS_TOKENS = {"rpm": False, "rpd": False, "tpm": True, "tpd": True}


class Wait(NamedTuple):
    """A reason in words and the wall time it ends (None: not known, or not a matter of time)."""

    reason: str
    until: float | None = None
    deferred: bool = False  # the fleet's store put it off with room in the windows: other members' requests first


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


# --- the fleet's line: other members' requests ahead -----------------------------------------------------------

CLASSES = ("critical", "high", "normal")  # the classes requests compete in, first served first
IN_LINE = frozenset({"waiting", "admitting"})  # states that stand in the fleet's line (queued, or asking the store)
FLEET_NAMED = 3  # (member, class) counts a reason names; the rest are summed
FLEET_ROWS = 50  # deferred rows of one member given the fleet's line (in send order): a bound, not a guess


class Ahead(NamedTuple):
    """Requests of one other member, in one class, that the fleet's store lets go first."""

    member: str  # as published (made inert only when worded)
    label: str  # the class they compete in
    requests: int


class FleetLine:
    """Every member's requests standing in the fleet's line, by model, member and class, each class's
    submission times sorted: what is ahead of one request is counted without walking every row.

    Built from published snapshots (untrusted): a row in an unknown class, or not waiting, is left out; a
    submission time is the snapshot's `taken_at` less the row's age (ages are finite: `snapshot_from_dict`)."""

    def __init__(self, snapshots: Mapping[str, CoreSnapshot]) -> None:
        line: dict[str, dict[str, list[list[float]]]] = {}
        for member, snapshot in snapshots.items():
            for row in snapshot.scheduler.requests:
                if row.state in IN_LINE and row.effective in CLASSES:
                    classes = line.setdefault(row.model, {}).setdefault(member, [[] for _ in CLASSES])
                    classes[CLASSES.index(row.effective)].append(snapshot.taken_at - max(0.0, row.age))
        for members in line.values():
            for classes in members.values():
                for times in classes:
                    times.sort()
        self._line = line

    def ahead(self, member: str, model: str, label: str, submitted: float) -> list[Ahead]:
        """Other members' requests for `model` ahead of one of `member`'s, in class `label`, submitted at wall
        time `submitted`: those in a higher class, and those in the same class submitted earlier. Highest class
        first, then the most, then by member."""
        if label not in CLASSES:
            return []
        rank = CLASSES.index(label)
        found = []
        for other, classes in self._line.get(model, {}).items():
            if other == member:
                continue
            for index in range(rank + 1):
                times = classes[index]
                count = len(times) if index < rank else bisect.bisect_left(times, submitted)
                if count:
                    found.append(Ahead(other, CLASSES[index], count))
        found.sort(key=lambda a: (CLASSES.index(a.label), -a.requests, a.member))
        return found


def behind_at(ahead: list[Ahead]) -> str:
    """"behind 3 critical at vm-2, 1 high at vm-3 (fleet)": other members' requests the store lets go first; past
    FLEET_NAMED pieces, the rest summed ("…, 7 more at 4 members"). Member names shown inert."""
    if not ahead:
        return ""
    named = [f"{a.requests:,} {a.label} at {name(a.member)}" for a in ahead[:FLEET_NAMED]]
    rest = ahead[FLEET_NAMED:]
    if rest:
        members = len({a.member for a in rest})
        named.append(f"{sum(a.requests for a in rest):,} more at {members:,} member{'s' if members != 1 else ''}")
    return f"behind {', '.join(named)} (fleet)"


def with_fleet_line(member: str, snapshot: CoreSnapshot, line: FleetLine) -> CoreSnapshot:
    """`member`'s snapshot with each request the store deferred (`RequestRow.deferred`) saying which other
    members' requests are ahead of it in the fleet's line, before its own reason; the first FLEET_ROWS such."""
    rows, given = [], 0
    for row in snapshot.scheduler.requests:
        if row.deferred and given < FLEET_ROWS:
            given += 1
            words = behind_at(line.ahead(member, row.model, row.effective, snapshot.taken_at - max(0.0, row.age)))
            if words:
                row = replace(row, reason=f"{words}; {row.reason}")
        rows.append(row)
    return replace(snapshot, scheduler=replace(snapshot.scheduler, requests=tuple(rows)))


def fleet_lines(snapshots: Mapping[str, CoreSnapshot], present: Collection[str]) -> dict[str, CoreSnapshot]:
    """Every member's published snapshot with the fleet's line in its deferred rows' reasons; only the `present`
    members (still running) stand in the line: a gone member's last rows wait for nothing."""
    line = FleetLine({member: snapshot for member, snapshot in snapshots.items() if member in present})
    return {member: with_fleet_line(member, snapshot, line) if any(r.deferred for r in snapshot.scheduler.requests)
            else snapshot for member, snapshot in snapshots.items()}
