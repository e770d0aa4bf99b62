"""Why a queued Groq request waits, in words an on-call engineer can act on, with when the wait ends.

Pure functions over figures the scheduler already has (a model's quota snapshot,
its wait for the request's tokens, the concurrency in use), so the words are
tested without a scheduler. Never the request's text: ids, figures and names only.

A request the fleet's store put off (`RequestRow.deferred`) is given its place in the
fleet's line by a reader of the fleet (`FleetLine`): from the rows every member
publishes with its snapshot, which other members' requests go first, by class.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple

from medops.core.clock import wall_text
from medops.core.inert_text import name
from medops.core.snapshot import CoreSnapshot, ModelQuota, RequestRow, StoreSnapshot, WindowUsage

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
    held = held_wait(quota, tokens, now_wall)
    if held is not None:
        return held
    full = [w for w in quota.windows
            if w.used + (tokens if _COUNTS_TOKENS.get(w.name, False) else 1) > w.limit]
    if not full and wait <= 0:
        return None
    name = full[0].name if full else "quota"
    if not math.isfinite(wait) or wait <= 0:
        return Wait(f"{name} full")
    until = now_wall + wait
    return Wait(f"{name} full until {wall_text(until, now_wall)}", until)


def held_wait(quota: ModelQuota, tokens: int, now_wall: float) -> Wait | None:
    """A window with room by its use but none once what it holds is counted (an emptied store's carry, the
    others' use while the store is away): 'rpm held until 20:57:43 (store restarted)'. Without this, a held
    window read as room ("the fleet has room in 1 s") for the whole hold, in a trial. None: nothing held."""
    for w in quota.windows:
        need = tokens if _COUNTS_TOKENS.get(w.name, False) else 1
        if w.held and w.used + need <= w.limit < w.counted + need:
            return Wait(held_words(w, now_wall), w.held_until if w.held_until > now_wall else None)
    return None


def held_words(window: WindowUsage, now_wall: float) -> str:
    """'rpm held until 20:57:43 (store restarted)'; without an end when none is known (Groq counts more)."""
    why = f" ({window.held_why})" if window.held_why else ""
    if window.held_until > now_wall:
        return f"{window.name} held until {wall_text(window.held_until, now_wall)}{why}"
    return f"{window.name} held{why}"


def store_never_reached(store: StoreSnapshot | None) -> Wait | None:
    """Why every queued request of a member whose fleet store never answered waits (None: no store, or it has
    answered): no window is full, nothing is admitted at all, and the wait ends only when the store answers (or
    at store_wait, when the request fails saying so)."""
    if store is None or not store.never_reached:
        return None
    return Wait(never_reached(store.down_since))


def never_reached(since: float | None) -> str:
    """'quota store never reached: nothing is admitted until it answers (since 20:14:53)', `since` the wall time
    of its first failure (None: not tried yet)."""
    return "quota store never reached: nothing is admitted until it answers" + \
        (f" (since {clock_time(since)})" if since is not None else "")


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


class Behind(NamedTuple):
    """What is ahead of one request in the fleet's line: the first FLEET_NAMED (member, class) counts, highest
    class first, then the most, then by member; and how many more requests beyond them."""

    named: tuple[Ahead, ...] = ()
    more: int = 0


class _ModelLine:
    """One model's line: each member's submission times per class (sorted), every member's merged per class,
    and each class's members by how many they hold there (most first)."""

    def __init__(self) -> None:
        self.times: dict[str, list[list[float]]] = {}
        self.merged: list[list[float]] = []
        self.by_count: list[list[tuple[str, int]]] = []

    def seal(self) -> None:
        for classes in self.times.values():
            for times in classes:
                times.sort()
        self.merged = [sorted(t for classes in self.times.values() for t in classes[i]) for i in range(len(CLASSES))]
        self.by_count = [sorted(((m, len(c[i])) for m, c in self.times.items() if c[i]), key=lambda p: (-p[1], p[0]))
                         for i in range(len(CLASSES))]


class FleetLine:
    """Every member's requests standing in the fleet's line, by model, class and member, with their submission
    times sorted: what is ahead of one request is counted by bisection, not by walking every row; members are
    walked one by one only to name those ahead in its own class.

    Built from published snapshots (untrusted): a row in an unknown class, or not waiting, is left out; a
    submission time is the snapshot's `taken_at` less the row's age (ages are finite: `snapshot_from_dict`)."""

    def __init__(self, snapshots: Mapping[str, CoreSnapshot]) -> None:
        self._models: dict[str, _ModelLine] = {}
        for member, snapshot in snapshots.items():
            for row in snapshot.scheduler.requests:
                if row.state in IN_LINE and row.effective in CLASSES:
                    line = self._models.setdefault(row.model, _ModelLine())
                    classes = line.times.setdefault(member, [[] for _ in CLASSES])
                    classes[CLASSES.index(row.effective)].append(snapshot.taken_at - max(0.0, row.age))
        for line in self._models.values():
            line.seal()

    def ahead(self, member: str, model: str, label: str, submitted: float) -> Behind:
        """Other members' requests for `model` ahead of one of `member`'s, in class `label`, submitted at wall
        time `submitted`: every one in a higher class, and those in the same class submitted earlier."""
        line = self._models.get(model)
        if line is None or label not in CLASSES:
            return Behind()
        rank = CLASSES.index(label)
        own = line.times.get(member)
        named: list[Ahead] = []
        total = 0
        for index in range(rank):  # a higher class: all of them go first
            total += len(line.merged[index]) - (len(own[index]) if own else 0)
            for other, count in line.by_count[index]:
                if len(named) >= FLEET_NAMED:
                    break
                if other != member:
                    named.append(Ahead(other, CLASSES[index], count))
        same = bisect.bisect_left(line.merged[rank], submitted) - \
            (bisect.bisect_left(own[rank], submitted) if own else 0)
        total += same
        if same and len(named) < FLEET_NAMED:  # its own class: those submitted earlier, member by member
            earlier = [(other, bisect.bisect_left(classes[rank], submitted)) for other, classes in line.times.items()
                       if other != member and classes[rank] and classes[rank][0] < submitted]
            earlier.sort(key=lambda p: (-p[1], p[0]))
            named += [Ahead(other, label, count) for other, count in earlier[:FLEET_NAMED - len(named)]]
        return Behind(tuple(named), total - sum(a.requests for a in named))

    def give(self, member: str, row: RequestRow, taken_at: float) -> RequestRow:
        """`member`'s row (from its snapshot taken at `taken_at`) saying what is ahead of it in the line, before
        its own reason; as it was if nothing is."""
        words = behind_at(self.ahead(member, row.model, row.effective, taken_at - max(0.0, row.age)))
        return replace(row, reason=f"{words}; {row.reason}") if words else row


def behind_at(behind: Behind) -> str:
    """"behind 3 critical at vm-2, 1 high at vm-3 (fleet)": other members' requests the store lets go first; past
    FLEET_NAMED pieces, the rest summed ("…, 7 more (fleet)"). Member names shown inert."""
    if not behind.named:
        return ""
    pieces = [f"{a.requests:,} {a.label} at {name(a.member)}" for a in behind.named]
    if behind.more:
        pieces.append(f"{behind.more:,} more")
    return f"behind {', '.join(pieces)} (fleet)"


def with_fleet_line(member: str, snapshot: CoreSnapshot, line: FleetLine) -> CoreSnapshot:
    """`member`'s snapshot with each request the store deferred (`RequestRow.deferred`) saying which other
    members' requests are ahead of it in the fleet's line, before its own reason; the first FLEET_ROWS such."""
    rows, given = [], 0
    for row in snapshot.scheduler.requests:
        if row.deferred and given < FLEET_ROWS:
            given += 1
            row = line.give(member, row, snapshot.taken_at)
        rows.append(row)
    return replace(snapshot, scheduler=replace(snapshot.scheduler, requests=tuple(rows)))
