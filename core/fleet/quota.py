"""One Groq quota for the whole fleet: the store decides, a local share stands in when it is away.

Each `FleetQuota` answers the scheduler as the in-process `GroqQuota` does, but
an admission is one round trip to the store's `medops_admit`, which counts the
windows of every instance on the store's clock and lets better-ranked requests
waiting on any instance go first. Every admission is also kept here, in a
*mirror* `GroqQuota` and in records with store ids, so that when the store is
down or slow this instance runs on its share (each limit divided by the members
it last saw alive, less what it already holds: the mirror's own windows), and
when it answers again, or comes back empty, the records are written back
before anything more is admitted. Never fail open: an instance that has never
seen the store admits nothing until it does.

Who decides is a strategy behind one small protocol (`Deciding`): `StoreDecides`
(one round trip per admission) or `LocalShare` (the share while the store is
away, nothing once `store_flight_bound` has passed or before the store was ever
reached). The member swaps it on every quota when the store goes away and when
it is back (`enter_local_share`, `store_is_back`); the quota itself never asks
which holds.

`membership.Fleet` is the instance's side of it: heartbeat, epoch, write-back; the two meet through
`records.py` (the admissions and what a quota needs of its member).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Protocol

from medops.core.clock import Clock
from medops.core.fleet.records import AdmissionRecord, FleetSide
from medops.core.fleet.store import HEARTBEAT_INTERVAL, QuotaStore, StoreUnavailable
from medops.core.fleet.wire import (
    AdmitArgs,
    Carried,
    Dimension,
    Entry,
    HoldMinute,
    Quad,
    Status,
    Usage,
    decode_admit,
)
from medops.core.groq.quota import DAY, MINUTE, TPD, TPM, GroqQuota, Reservation, too_large
from medops.core.groq.rate_headers import LimitExceeded, RateLimitHeaders, format_go_duration
from medops.core.groq.wait_reason import held_words, never_reached
from medops.core.ledger.records import AdmissionStore
from medops.core.settings.config import ModelLimits
from medops.core.snapshot import ModelQuota, WindowUsage

WAITER_TTL = 2.0  # a waiting request's place in line lapses this long after it should have asked again
_DIMENSION: dict[str, Dimension] = {d.label: d for d in Dimension}


def share_of(limits: ModelLimits, members: int) -> ModelLimits:
    """Each window's limit divided by the members last seen alive; no members seen yet: no share at all."""
    if members <= 0:
        return replace(limits, rpm=0, rpd=0, tpm=0, tpd=0)
    n = members
    return replace(limits, rpm=limits.rpm // n, rpd=limits.rpd // n, tpm=limits.tpm // n, tpd=limits.tpd // n)


class FleetQuota:
    """One model's quota shared through the store; the same answers the scheduler gets from `GroqQuota`."""

    def __init__(self, model: str, limits: ModelLimits, clock: Clock, fleet: FleetSide,
                 ledger: AdmissionStore | None = None) -> None:
        self.model = model
        self.configured = limits
        self._clock = clock
        self._fleet: FleetSide = fleet
        # This instance's own admissions: its part of the fleet's use, and its rules while the store is away.
        self._mirror = GroqQuota(model, share_of(limits, fleet.share_divisor), clock, ledger)
        self._records: dict[int, AdmissionRecord] = {}
        self._server_limits: dict[int, int] = {}
        self._view: tuple[WindowUsage, ...] | None = None  # the fleet's windows, from the store's latest answer
        # If the store is emptied, what a member that is gone by then had used is known only from here: every
        # other member's part of each window (rpm rpd tpm tpd) as of the latest heartbeat, and the fleet's use
        # with this member's own part as of the latest answer (store ms), for what nobody was seen holding yet.
        self._parts: dict[str, Quad] = {}
        self._parts_at = 0
        self._view_at = 0
        self._view_own: Quad | None = None
        # Per window, what the latest heartbeat counted beyond every member's part (held, nobody's use). An
        # admission's reply gives only the total and this member's part: until the next beat this splits it.
        self._held_seen: Quad | None = None
        self._held = 0.0
        self._others_until: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # wall time the local share's hold ends
        self._restarted_at = 0.0  # wall time this member last wrote its day into an emptied store
        self._by_store = StoreDecides(self)
        self._local_share = LocalShare(self)
        # As the member's other quotas: the store decides if it answers, else the share (nothing, if never seen).
        self._deciding: Deciding = self._by_store if fleet.store.up else self._local_share
        fleet.quotas[model] = self

    # --- sizing ---------------------------------------------------------------

    def window_limits(self) -> list[int]:
        c = self.configured
        limits = [c.rpm, c.rpd, c.tpm, c.tpd]
        for index, server in self._server_limits.items():
            limits[index] = min(limits[index], server)
        return limits

    @property
    def largest_request(self) -> int:
        limits = self.window_limits()
        return min(limits[TPM], limits[TPD], self.configured.context_window)

    def reconfigure(self, limits: ModelLimits) -> None:
        self.configured = limits
        self._mirror.reconfigure(share_of(limits, self._fleet.share_divisor))

    def enter_local_share(self) -> None:
        """The store just went away: count what the others may hold, so the members' shares sum within limits.

        This member's view is up to a heartbeat old, and in that time the others may have filled any minute
        window: the minute windows count as full until everything admitted before the outage has left them
        (a window after the longest attempt). The day windows count the others' use last seen plus a minute's
        limit (all they could add unseen), split N ways: member i may admit limit/N - own_i - others/N, and
        over the N members that sums to at most limit - fleet. Meanwhile the store reserves each late member's
        share, so members still reaching it leave that room to those cut off. The share decides from now."""
        self._deciding = self._local_share
        limits = self.window_limits()
        own = self._mirror.snapshot().windows
        fleet = self._view or own
        n = max(1, self._fleet.share_divisor)
        minute_hold = MINUTE + self._fleet.attempt_bound
        holds = (minute_hold, DAY, minute_hold, DAY)
        others = [0, 0, 0, 0]
        if not self._unused():
            others = [limits[0], math.ceil(max(0, fleet[1].used - own[1].used + limits[0]) / n),
                      limits[2], math.ceil(max(0, fleet[3].used - own[3].used + limits[2]) / n)]
        self._mirror.count_others(others, holds)
        wall = self._clock.wall()
        self._others_until = tuple(wall + hold if amount else 0.0 for amount, hold in zip(others, holds, strict=True))

    def _unused(self) -> bool:
        """Nobody was seen using this model at the store's latest answer: nothing of it to hold for the others."""
        return (self._view is not None and all(w.used == 0 for w in self._view)
                and not any(any(part) for part in self._parts.values()))

    def reshare(self) -> None:
        """The members alive changed: the local share follows (used only while the store is away)."""
        self._mirror.reconfigure(share_of(self.configured, self._fleet.share_divisor))

    def check_size(self, tokens: int) -> None:
        if tokens <= self.largest_request:
            return
        raise too_large(self.model, tokens, self.window_limits(), self.configured.context_window)

    # --- admission: whoever decides now ---------------------------------------

    def wait_time(self, tokens: int) -> float:
        return self._deciding.wait_time(tokens)

    async def admit(self, tokens: int, priority: int, waited: float) -> Reservation | float:
        """A reservation, or seconds to wait before asking again: from the store, or the local share."""
        return await self._deciding.admit(tokens, priority, waited)

    def blocking(self, tokens: int) -> str:
        return self._deciding.blocking(tokens)

    @property
    def deciding(self) -> str:
        """Who decides admissions now, for display: "store" or "local share"."""
        return self._deciding.mode

    def store_is_back(self) -> None:
        """The store answers again (or for the first time): it decides from now."""
        self._deciding = self._by_store

    # --- settling -------------------------------------------------------------

    def settle(self, reservation: Reservation, tokens_used: int) -> None:
        record = self._records.get(reservation.seq)
        self._mirror.settle(reservation, tokens_used)
        if record is None or record.settled_at is not None or record.released:
            return
        record.settled_at, record.used, record.synced = self._clock.monotonic(), max(0, tokens_used), False
        self._fleet.send(record, self._fleet.wire.settle(self.model, record.id, record.used))

    def release(self, reservation: Reservation) -> None:
        record = self._records.get(reservation.seq)
        self._mirror.release(reservation)
        if record is None or record.settled_at is not None or record.released:
            return
        record.released, record.synced = True, False
        self._fleet.send(record, self._fleet.wire.release(self.model, record.id))

    @property
    def in_flight(self) -> int:
        return self._mirror.in_flight

    # --- what the server says: it binds the whole fleet ------------------------

    def observe_headers(self, headers: RateLimitHeaders, default_reset: float | None = None) -> None:
        self._mirror.observe_headers(headers, default_reset)
        if headers.empty:
            return
        limits = self.window_limits()
        wire = self._fleet.wire
        for d, limit, remaining, reset in (
                (Dimension.RPD, headers.limit_requests, headers.remaining_requests, headers.reset_requests),
                (Dimension.TPM, headers.limit_tokens, headers.remaining_tokens, headers.reset_tokens)):
            if limit is not None and limit > 0:
                self._server_limits[d.index] = limit
                self._fleet.signal(wire.server_limit(self.model, d, limit))
                limits = self.window_limits()
            if remaining is not None:
                span = DAY if d is Dimension.RPD else MINUTE
                hold = reset if reset is not None else default_reset if default_reset is not None else span
                self._fleet.signal(wire.server_extra(self.model, d, limits[d.index], remaining,
                                                     math.ceil(min(hold, span) * 1000)))

    def observe_429(self, retry_after: float | None, limit: LimitExceeded | None = None,
                    headers: RateLimitHeaders | None = None) -> None:
        self._mirror.observe_429(retry_after, limit, headers)
        wait = self._signal_blocks(self._mirror.snapshot().windows)
        if limit is not None and limit.limit > 0:
            d = _DIMENSION[limit.dimension]
            self._server_limits[d.index] = limit.limit
            self._fleet.signal(self._fleet.wire.server_limit(self.model, d, limit.limit))
        if headers is not None:
            self.observe_headers(headers, default_reset=wait)

    def _signal_blocks(self, windows: tuple[WindowUsage, ...]) -> float:
        """Tell the fleet which of this member's windows a 429 blocks, for the longest block; that block (s)."""
        dims = tuple(d for d, w in zip(Dimension, windows, strict=True) if w.blocked_for > 0)
        wait = max((w.blocked_for for w in windows), default=0.0)
        if dims and wait > 0:
            self._fleet.signal(self._fleet.wire.block(self.model, dims, math.ceil(wait * 1000)))
        return wait

    def resignal(self) -> None:
        """After an absence, or into an emptied store: what this member saw that still binds goes to the store
        again (signals are sent only while it answers): a 429's block, a 498's hold, the server's limits."""
        own = self._mirror.snapshot()
        self._signal_blocks(own.windows)
        if own.capacity_hold > 0:
            self._fleet.signal(self._fleet.wire.hold(self.model, math.ceil(own.capacity_hold * 1000)))
        for index, limit in self._server_limits.items():
            self._fleet.signal(self._fleet.wire.server_limit(self.model, Dimension(index + 1), limit))

    def hold_for_capacity(self, seconds: float) -> None:
        self._mirror.hold_for_capacity(seconds)
        if seconds > 0:
            self._fleet.signal(self._fleet.wire.hold(self.model, math.ceil(seconds * 1000)))

    @property
    def capacity_hold(self) -> float:
        return self._deciding.capacity_hold()

    @property
    def rate_limited(self) -> int:
        return self._mirror.rate_limited

    # --- the store's view, write-back -----------------------------------------

    def take_view(self, usage: Usage, at_ms: int, own: Quad | None = None) -> None:
        """The fleet's windows as the store counted them at `at_ms`; from an admission, this member's own part."""
        self._view_at = at_ms
        self._view_own = own
        spans = (MINUTE, DAY, MINUTE, DAY)
        self._view = tuple(
            WindowUsage(d.label, usage.used[d.index], usage.limit[d.index],
                        spans[d.index] if usage.used[d.index] else 0.0, usage.blocked_ms[d.index] / 1000)
            for d in Dimension)
        self._held = usage.held_ms / 1000

    def take_parts(self, at_ms: int, parts: dict[str, Quad]) -> None:
        """Each member's part of each window from a heartbeat at `at_ms` (the same moment as its view)."""
        others = dict(parts)
        self._view_own = others.pop(self._fleet.instance, (0, 0, 0, 0))
        self._parts = others
        self._parts_at = at_ms
        if self._view is not None and self._view_at == at_ms:
            summed = [self._view_own[d] + sum(p[d] for p in others.values()) for d in range(4)]
            held = [max(0, w.used - part) for w, part in zip(self._view, summed, strict=True)]
            self._held_seen = (held[0], held[1], held[2], held[3])

    def carried_entries(self, hold_since: int = 0) -> list[Entry]:
        """For an emptied store, beside this member's own day: every other member's part as last seen, to count
        until that member writes its own day back (one that is gone never will), and under "?" what the fleet
        held beyond the parts seen, each until it has left the windows (a minute, or a day, after it was seen,
        plus the longest attempt: a request then in flight settles within it).

        What the old store admitted after this member's last look, for members that have left since, nobody
        knows; in under a minute it was at most a minute's limit. So the minute windows count as full until a
        minute and an attempt after the new epoch began ("h", if it began after `hold_since`, store ms), and "?"
        adds a minute's limit to the day windows."""
        attempt = math.ceil(self._fleet.attempt_bound * 1000)
        hold: Entry = HoldMinute(attempt, hold_since)
        if not self._view_at and not self._parts_at:
            return [hold]  # this member never saw the old store: it can only hold the minute
        if self._unused():
            return []  # nobody used this model when last seen: nothing of it to hold
        self._restarted_at = self._clock.wall()

        def entry(name: str, at_ms: int, part: Quad) -> Entry:
            return Carried(name, at_ms + int(MINUTE * 1000) + attempt, at_ms + int(DAY * 1000) + attempt, part)

        entries = [hold] + [entry(instance, self._parts_at, part) for instance, part in self._parts.items()]
        unseen = [0, 0, 0, 0]
        if self._view is not None and self._view_own is not None:
            seen = [sum(part[d] for part in self._parts.values()) for d in range(4)]
            unseen = [max(0, w.used - own - known) for w, own, known in zip(self._view, self._view_own, seen,
                                                                             strict=True)]
        limits = self.window_limits()
        if not self._unused():
            unseen[1] += limits[0]  # a minute's requests, on the day's
            unseen[3] += limits[2]  # a minute's tokens, on the day's
        entries.append(entry("?", self._view_at or self._parts_at, (unseen[0], unseen[1], unseen[2], unseen[3])))
        return entries

    def entries(self, only_unsynced: bool, store: QuotaStore) -> list[tuple[AdmissionRecord, Entry, tuple[Any, ...]]]:
        """What to write back: unsynced records, or (into an emptied store) every record of the day."""
        return [(r, r.entry(store), r.state()) for r in self._records.values()
                if not (only_unsynced and r.synced) and not (r.released and only_unsynced is False)]

    def records(self) -> list[AdmissionRecord]:
        """This member's admissions still kept for write-back."""
        return list(self._records.values())

    def forget_old(self) -> None:
        """Records of admissions settled a day ago can no longer count anywhere."""
        horizon = self._clock.monotonic() - DAY
        stale = [seq for seq, r in self._records.items()
                 if (r.released and r.synced) or (r.settled_at is not None and r.settled_at <= horizon)]
        for seq in stale:
            del self._records[seq]

    def restore(self, admissions: Any) -> None:
        self._mirror.restore(admissions)

    def remaining(self) -> dict[str, int]:
        return self._deciding.remaining()

    def snapshot(self) -> ModelQuota:
        return self._deciding.snapshot()

    def _share_snapshot(self) -> ModelQuota:
        """The local share's windows: what this instance may use while the store is away; what it counts for
        the others is held, not anyone's use."""
        mirror = self._mirror.snapshot()
        # This instance's part is what it admitted: the others' use its mirror counts (while the store is
        # away, and for a minute or a day after) is theirs, not its own.
        own = self._mirror.own_use()
        wall = self._clock.wall()
        return replace(mirror, windows=tuple(
            replace(w, own=o, used=o, held=max(0, w.used - o), held_until=until if until > wall else 0.0,
                    held_why="store unreachable" if until > wall else "Groq counts more")
            for w, o, until in zip(mirror.windows, own, self._others_until, strict=True)))

    def _fleet_snapshot(self, view: tuple[WindowUsage, ...]) -> ModelQuota:
        """The fleet's windows, with this instance's part of each; what is counted beyond the members' parts is
        held (an emptied store's carry, Groq's extra count), not use: as the latest heartbeat split it, and
        between beats no more than the total beside this member's part now (what it admits is always use)."""
        mirror = self._mirror.snapshot()
        own = self._mirror.own_use()
        windows = tuple(replace(fleet, own=o) for fleet, o in zip(view, own, strict=True))
        if self._held_seen is not None and self._view_own is not None:
            attempt = self._fleet.attempt_bound
            ends = [self._restarted_at + span + attempt for span in (MINUTE, DAY, MINUTE, DAY)]
            wall = self._clock.wall()
            held = [min(seen, max(0, w.used - mine))
                    for w, seen, mine in zip(windows, self._held_seen, self._view_own, strict=True)]
            windows = tuple(replace(w, used=w.used - h, held=h,
                                    held_until=end if end > wall else 0.0,
                                    held_why="store restarted" if end > wall else "Groq counts more")
                            for w, h, end in zip(windows, held, ends, strict=True))
        return replace(mirror, windows=windows, capacity_hold=self.capacity_hold)


class Deciding(Protocol):
    """Who decides a fleet quota's admissions, and so what its figures are: `StoreDecides` or `LocalShare`."""

    mode: str  # for display

    async def admit(self, tokens: int, priority: int, waited: float) -> Reservation | float: ...
    def wait_time(self, tokens: int) -> float: ...
    def blocking(self, tokens: int) -> str: ...
    def capacity_hold(self) -> float: ...
    def remaining(self) -> dict[str, int]: ...
    def snapshot(self) -> ModelQuota: ...


class StoreDecides:
    """The store decides: one round trip to its `medops_admit` per admission, counted in the quota's mirror."""

    mode = "store"

    def __init__(self, quota: FleetQuota) -> None:
        self._quota = quota

    def wait_time(self, tokens: int) -> float:
        """What this member saw itself (a 429's block, a 498's hold: its signal to the store may still be on its
        way), or 0: only the store can say."""
        own = self._quota._mirror.snapshot()
        return max(own.capacity_hold, *(w.blocked_for for w in own.windows))

    async def admit(self, tokens: int, priority: int, waited: float) -> Reservation | float:
        quota = self._quota
        fleet = quota._fleet
        record_id = fleet.new_id()
        limits = quota.window_limits()
        try:
            reply = decode_admit(await fleet.store.call(fleet.wire.admit(quota.model, AdmitArgs(
                fleet.instance, record_id, tokens, priority, int(waited * 1000),
                (limits[0], limits[1], limits[2], limits[3]), int(fleet.flight_bound * 1000),
                int(fleet.starvation_bound * 1000), int(WAITER_TTL * 1000), fleet.epoch or ""))))
        except StoreUnavailable:
            # The store may still run the call later (frozen, not dead): give it back when it answers. The
            # member has put the local share in charge meanwhile: it answers this ask.
            quota._records[-fleet.new_seq()] = AdmissionRecord(record_id, tokens, released=True)
            return await quota._local_share.admit(tokens, priority, waited)
        if reply.status is Status.SEEDING:
            return max(0.05, reply.wait_ms / 1000)  # members are writing their day back: nobody admits yet
        if reply.usage is None:  # unseeded, or a new epoch
            await fleet.heartbeat()  # joins the new epoch and writes this instance's day back
            return 0.05  # then asks again
        quota.take_view(reply.usage, reply.now_ms, reply.own)
        if reply.status is Status.OK:
            reservation = quota._mirror.count_admitted(tokens)
            quota._records[reservation.seq] = AdmissionRecord(record_id, tokens, synced=True)
            return reservation
        # Ask again by WAITER_TTL at the latest: that keeps this member's place in the store's line.
        return min(WAITER_TTL, max(0.001, reply.wait_ms / 1000))

    def blocking(self, tokens: int) -> str:
        quota = self._quota
        reasons = []
        if quota._held > 0:
            reasons.append(f"held for {format_go_duration(quota._held)} after Groq was over capacity (498)")
        # The windows as shown (use and held apart): a window full only by what an emptied store holds is
        # held, with its end, not "full" (its use alone read as room, in a trial).
        wall = quota._clock.wall()
        for window in self.snapshot().windows if quota._view is not None else ():
            if window.blocked_for > 0:
                reasons.append(f"{window.name} blocked by a 429 for {format_go_duration(window.blocked_for)}")
            elif window.used < window.limit <= window.counted:
                reasons.append(held_words(window, wall))
            elif window.used >= window.limit:
                reasons.append(f"{window.name} full across the fleet")
        return ", ".join(reasons) or "waiting for the fleet's quota"

    def capacity_hold(self) -> float:
        return max(self._quota._mirror.capacity_hold, self._quota._held)

    def remaining(self) -> dict[str, int]:
        view = self._quota._view
        if view is None:  # no answer from the store yet: what this member knows
            return self._quota._mirror.remaining()
        return {w.name: (0 if w.blocked_for > 0 else w.remaining) for w in view}

    def snapshot(self) -> ModelQuota:
        view = self._quota._view
        return self._quota._share_snapshot() if view is None else self._quota._fleet_snapshot(view)


class LocalShare:
    """The store is away: this member decides alone on its share (`enter_local_share`), and only within
    `store_flight_bound` of the store's last answer (beyond it the store reserves nothing for it); before the
    store was ever reached, nothing at all (never fail open)."""

    mode = "local share"

    def __init__(self, quota: FleetQuota) -> None:
        self._quota = quota

    def _open(self) -> bool:
        fleet = self._quota._fleet
        last = fleet.store.last_answer
        return fleet.ever_seen and last is not None and self._quota._clock.monotonic() - last < fleet.flight_bound

    def wait_time(self, tokens: int) -> float:
        if not self._open():
            return HEARTBEAT_INTERVAL
        wait = self._quota._mirror.wait_time(tokens)
        # A share too small for this request is no verdict: the store may answer again any moment.
        return min(wait, HEARTBEAT_INTERVAL * 5) if math.isfinite(wait) else HEARTBEAT_INTERVAL

    async def admit(self, tokens: int, priority: int, waited: float) -> Reservation | float:
        """Decided here and now, on the share; never suspends."""
        quota = self._quota
        reservation = quota._mirror.try_admit(tokens) if self._open() else None
        if reservation is None:
            return max(self.wait_time(tokens), 0.05)
        quota._records[reservation.seq] = AdmissionRecord(quota._fleet.new_id(), tokens)
        return reservation

    def blocking(self, tokens: int) -> str:
        return f"{self._quota._mirror.blocking(tokens)}; {self.reason()}"

    def reason(self) -> str:
        """Why the share decides, and what it lets through."""
        fleet = self._quota._fleet
        store = fleet.store
        if not fleet.ever_seen:
            return never_reached(store.down_since)  # the words the Requests tab gives (wait_reason.py)
        since = store.down_since
        when = "" if since is None else f" since {time.strftime('%H:%M:%S', time.localtime(since))}"
        if not self._open():
            return f"quota store unreachable{when}, longer than store_flight_bound: nothing is admitted until it " \
                   "answers"
        return f"quota store unreachable{when}; local share 1/{fleet.share_divisor}"

    def capacity_hold(self) -> float:
        return self._quota._mirror.capacity_hold

    def remaining(self) -> dict[str, int]:
        return self._quota._mirror.remaining()

    def snapshot(self) -> ModelQuota:
        return self._quota._share_snapshot()


def make_fleet_quota(fleet: FleetSide) -> Any:
    """A factory for `QuotaBook`: every model's quota goes through `fleet`."""
    def build(model: str, limits: ModelLimits, clock: Clock, ledger: AdmissionStore | None) -> FleetQuota:
        return FleetQuota(model, limits, clock, fleet, ledger)
    return build

