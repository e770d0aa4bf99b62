"""The fleet as a reader sees it from the store, without a core: members, their snapshots, the quota.

For `medops fleet` and for consoles watching members they do not run. Reads
only, and bounded: at most MAX_MEMBERS members, each description and snapshot
size-checked before it is fetched, each parsed on its own (`fleet.entries`);
what cannot be read is skipped and counted. The organisation's windows come
from the store's own sums and each member's part, never from a snapshot.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from medops.core.clock import wall_text
from medops.core.errors import ConfigError
from medops.core.fleet.entries import (
    MAX_MEMBERS,
    MEMBER_BYTES,
    SNAPSHOT_BYTES,
    Description,
    Malformed,
    Skips,
    description,
    member_name,
    published_snapshot,
    skipped_note,
)
from medops.core.fleet.namespaces import other_namespaces
from medops.core.fleet.pace import hour_use
from medops.core.fleet.publish import LEFT_KEEP
from medops.core.fleet.store import MEMBER_TTL
from medops.core.fleet.wire import Dimension, namespace_prefix
from medops.core.groq.wait_reason import FleetLine, with_fleet_line
from medops.core.inert_text import name
from medops.core.settings.redact import redact_url
from medops.core.snapshot import CoreSnapshot

STALE_AFTER = 5.0  # seconds without a heartbeat before a member is marked stale (alive for MEMBER_TTL)
TAKEN_AT_SLACK = 120.0  # a snapshot dated further than this from the store's clock is never "the newest"
MAX_MODELS = 32  # models whose windows one reading shows
DIMENSIONS = tuple(d.label for d in Dimension)  # the store's dimensions 1..4


class FleetUnavailable(ConfigError):
    """No store is set, or it cannot be read."""


class MemberState(StrEnum):
    """Where a member is, as one reading of the store shows it (`member_state` decides)."""

    ALIVE = "alive"  # beating
    STALE = "stale"  # beats late (more than STALE_AFTER), still counted alive until MEMBER_TTL
    GONE = "gone"  # no beat within MEMBER_TTL and it never said goodbye: killed, or cut off
    LEFT = "left"  # it stopped cleanly (medops_leave)

    @property
    def present(self) -> bool:
        """Still running: its queues, pauses and open alerts count in the fleet's figures."""
        return self in (MemberState.ALIVE, MemberState.STALE)


def member_state(expires_ms: float | None, beat_ms: float | None, now_ms: float) -> tuple[MemberState, float]:
    """A member's state and the seconds since its last sign of life, from one reading of the store (`now_ms` on
    its clock): its `alive` score (when its heartbeat expires; set to the moment it left by `medops_leave`) and
    its `beat` score (its last heartbeat; removed when it leaves). Every view asks this, so they never disagree."""
    if expires_ms is None:  # listed but never beat on this wire (or damaged): nothing says when it last lived
        return MemberState.GONE, max(0.0, now_ms - (beat_ms or 0.0)) / 1000
    if beat_ms is None and expires_ms <= now_ms:
        return MemberState.LEFT, max(0.0, now_ms - expires_ms) / 1000
    last = beat_ms if beat_ms is not None else expires_ms - MEMBER_TTL * 1000
    age = max(0.0, now_ms - last) / 1000
    if expires_ms <= now_ms:
        return MemberState.GONE, age
    return (MemberState.STALE if age > STALE_AFTER else MemberState.ALIVE), age


@dataclass(frozen=True)
class MemberRow:
    """One member as the fleet view lists it; figures from its last snapshot (absent: none published)."""

    instance: str
    host: str
    pid: int
    role: str
    version: str
    started: float  # wall time
    heartbeat_age: float  # seconds since its last heartbeat
    last_beat: float  # wall time of its last heartbeat, by this reader's clock
    state: MemberState
    queued: Mapping[str, int]  # by priority
    in_flight: int
    done: int
    failed: int
    rate_limited: int
    own: Mapping[str, int]  # its part of each window of the default model
    loop_lag_p99_ms: float
    cpu_percent: float
    memory_percent: float
    open_alerts: int
    paused: bool
    gateway_clients: int | None = None  # a gateway member's connections open (None: it serves no gateway)
    gateway_in_flight: int = 0

    def uptime(self, now: float) -> float:
        """How long it has run by wall time `now`: while alive until now, once stale or gone until its last beat."""
        return max(0.0, (now if self.state == MemberState.ALIVE else self.last_beat) - self.started)


@dataclass(frozen=True)
class FleetWindow:
    """One window of one model: the members' use (the sum of their parts) and what is held beside it."""

    model: str
    name: str
    used: int  # the members' use: the sum of `parts`
    limit: int
    parts: Mapping[str, int]  # instance -> its part
    last_hour: int | None = None  # day windows: what entered in the last hour, in flight included (burn rate)
    held: int = 0  # counted against the limit, but nobody's use (an emptied store's carry, Groq's extra count)
    held_until: float = 0.0  # wall time (store clock) the hold ends
    held_why: str = ""  # "store restarted", "Groq counts more"

    def figures(self) -> str:
        """'rpm: 2/30 (a 1, b 1); 28 held until 14:02:11 (store restarted)' (names as they come: plain text)."""
        parts = ", ".join(f"{member} {n:,}" for member, n in sorted(self.parts.items()) if n)
        line = f"{self.model} {self.name}: {self.used:,}/{self.limit:,}" + (f"  ({parts})" if parts else "")
        if self.held:
            line += f"; {self.held:,} held until {wall_text(self.held_until, time.time())} ({self.held_why})"
        return line


@dataclass(frozen=True)
class FleetView:
    store: str  # redacted URL
    read_at: float  # wall time
    members: tuple[MemberRow, ...]
    windows: tuple[FleetWindow, ...]
    snapshots: Mapping[str, CoreSnapshot]  # instance -> its last published snapshot (checked)
    skipped: Mapping[str, int] = field(default_factory=dict)  # what could not be read, by why
    store_time: float = 0.0  # the store's wall clock when read (0: unknown, use read_at)
    namespace: str = ""  # the fleet's namespace on the store (a hash of the Groq key or endpoint, not a secret)
    others: tuple[str, ...] = ()  # other namespaces with members on the same store: other keys or endpoints

    def others_note(self, how: str) -> str:
        """'1 other fleet shares this store (another Groq key or endpoint): 9f2c… (HOW)'; '' when none."""
        if not self.others:
            return ""
        many = len(self.others) > 1
        return (f"{len(self.others)} other fleet{'s' if many else ''} share{'' if many else 's'} this store "
                f"(another Groq key or endpoint): {', '.join(self.others)}; {how}")

    def skipped_note(self) -> str:
        """'2 malformed member entries skipped'; '' when everything was read."""
        return skipped_note(self.skipped)

    def newest(self, present: Mapping[str, CoreSnapshot]) -> CoreSnapshot | None:
        """The newest of `present` by `taken_at`, among those dated near the store's clock (one dated a year
        ahead would otherwise always win)."""
        clock = self.store_time or self.read_at
        near = [s for s in present.values() if abs(s.taken_at - clock) <= TAKEN_AT_SLACK]
        return max(near, key=lambda s: s.taken_at, default=None)

    def tally(self) -> str:
        """'3 alive, 1 stale, 0 gone, 2 left': the members by state, as every view says it."""
        states = Counter(m.state for m in self.members)
        return ", ".join(f"{states[s]} {s}" for s in MemberState)

    def default_model(self) -> str:
        """The default model most members run with ('' before any has published)."""
        return _default_model(self.snapshots)

    def line(self) -> FleetLine:
        """The requests of the members still running, standing in the fleet's line (a gone member's last rows
        wait for nothing). Counted when asked, by the views that show request rows, not on every reading."""
        present = {m.instance for m in self.members if m.state.present}
        return FleetLine({name: snap for name, snap in self.snapshots.items() if name in present})

    def in_line(self, instance: str) -> CoreSnapshot | None:
        """The member's published snapshot, each request the store put off saying whose requests go first."""
        published = self.snapshots.get(instance)
        if published is None or not any(row.deferred for row in published.scheduler.requests):
            return published
        return with_fleet_line(instance, published, self.line())


def _default_model(snapshots: Mapping[str, CoreSnapshot]) -> str:
    counts = Counter(s.quota.default_model for s in snapshots.values())
    return counts.most_common(1)[0][0] if counts else ""


async def read_fleet(url: str, namespace: str, password: str | None = None, budget: float = 2.0,
                     left_for: float = LEFT_KEEP) -> FleetView:
    """Read every member (at most MAX_MEMBERS; those that left more than `left_for` seconds ago not listed) and
    the organisation's quota; `FleetUnavailable` if it cannot."""
    if not url:
        raise FleetUnavailable("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
    prefix = namespace_prefix(namespace)
    client = redis.Redis.from_url(url, password=password or None, socket_timeout=budget,
                                  socket_connect_timeout=budget, decode_responses=False)
    skips = Skips()
    try:
        seconds, micros = await cast(Any, client.time())
        now = seconds + micros / 1e6
        keys = await _member_keys(client, prefix, skips)
        described = await read_sized(client, "HSTRLEN", f"{prefix}members", keys, MEMBER_BYTES,
                                     "oversized member entries", skips)
        expiries, beats = await _beats(client, prefix, keys)
        raw = await read_sized(client, "STRLEN", None, [prefix.encode() + b"snap:" + k for k in keys], SNAPSHOT_BYTES,
                           "snapshots over 1 MiB", skips)
        members: list[MemberRow] = []
        snapshots: dict[str, CoreSnapshot] = {}
        for key, blob, expires, beat, snap_blob in zip(keys, described, expiries, beats, raw, strict=True):
            instance = member_name(key)
            try:
                info = description(blob)
            except Malformed:
                skips.add("malformed member entries")
                continue
            state, age = member_state(expires, beat, now * 1000)
            if state == MemberState.LEFT and age > left_for:
                continue  # its last snapshot has expired: nothing left to show but a name
            snap = _snapshot(snap_blob, skips)
            if snap is not None:
                snapshots[instance] = snap
            members.append(_row(instance, info, state, age, snap))
        live = {m.instance for m in members if m.state in (MemberState.ALIVE, MemberState.STALE)}
        windows = await _windows(client, prefix, now, keys, snapshots, skips, live)
        others = await other_namespaces(client, namespace)
    except (RedisError, OSError) as exc:
        raise FleetUnavailable(f"quota store {redact_url(url)} cannot be read ({type(exc).__name__}); "
                               "check store_url, MEDOPS_STORE_PASSWORD and that the store runs") from None
    finally:
        await client.aclose()
    members.sort(key=lambda m: m.instance)
    return FleetView(redact_url(url), time.time(), tuple(members), windows, snapshots, skips.frozen(), now,
                     namespace, others)


async def _beats(client: redis.Redis, prefix: str, keys: Sequence[bytes]) -> tuple[list[float | None],
                                                                                  list[float | None]]:
    """Each member's heartbeat expiry and last heartbeat (store ms; None: no entry), read together."""
    if not keys:
        return [], []
    async with client.pipeline(transaction=False) as pipe:
        pipe.zmscore(f"{prefix}alive", cast(Any, keys))
        pipe.zmscore(f"{prefix}beat", cast(Any, keys))
        expiries, beats = await pipe.execute()
    return ([None if e is None else float(e) for e in expiries], [None if b is None else float(b) for b in beats])


async def _member_keys(client: redis.Redis, prefix: str, skips: Skips) -> list[bytes]:
    """The members' names, at most MAX_MEMBERS (HRANDFIELD: names only, never their values); the rest counted."""
    total = int(await cast(Any, client.hlen(f"{prefix}members")))
    if total <= 0:
        return []
    keys = await cast(Any, client.hrandfield(f"{prefix}members", min(total, MAX_MEMBERS)))
    skips.add(f"members beyond the {MAX_MEMBERS:,} read", total - len(keys))
    return sorted(keys if isinstance(keys, list) else [keys])


async def read_sized(client: redis.Redis, measure: str, key: str | None, names: Sequence[bytes], cap: int, why: str,
                 skips: Skips) -> list[bytes | None]:
    """The values at `names` (fields of hash `key`, or keys), each measured first and left unread (None) when
    over `cap` bytes, so one forged 98 MB value costs a reader nothing."""
    if not names:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for one in names:
            pipe.execute_command(measure, *((key, one) if key is not None else (one,)))
        sizes = await pipe.execute()
    wanted = [one for one, n in zip(names, sizes, strict=True) if 0 < int(n) <= cap]
    skips.add(why, sum(1 for n in sizes if int(n) > cap))
    if not wanted:
        return [None] * len(names)
    got = await cast(Any, client.hmget(key, wanted) if key is not None else client.mget(wanted))
    found = dict(zip(wanted, got, strict=True))
    return [found.get(one) for one in names]


def _snapshot(blob: bytes | None, skips: Skips) -> CoreSnapshot | None:
    if blob is None:
        return None
    try:
        snap = published_snapshot(blob)
    except Malformed:
        skips.add("malformed snapshots")
        return None
    return snap


def _row(name: str, info: Description, state: MemberState, age: float, snap: CoreSnapshot | None) -> MemberRow:
    snap = snap or CoreSnapshot(taken_at=0.0, uptime=0.0)
    scheduler, quota, system = snap.scheduler, snap.quota, snap.system
    default = next((m for m in quota.models if m.model == quota.default_model), None)
    return MemberRow(
        instance=name, host=info.host, pid=info.pid, role=info.role, version=info.version, started=info.started,
        heartbeat_age=age, last_beat=time.time() - age, state=state,
        queued={q.priority: q.depth for q in scheduler.queues}, in_flight=scheduler.in_flight,
        done=scheduler.completed, failed=scheduler.failed, rate_limited=sum(m.rate_limited for m in quota.models),
        own={w.name: int(w.own or 0) for w in (default.windows if default is not None else ())},
        loop_lag_p99_ms=system.loop_lag_ms, cpu_percent=system.cpu_percent, memory_percent=system.memory_percent,
        open_alerts=sum(1 for a in snap.alerts if a.cleared_at is None), paused=snap.paused,
        gateway_clients=snap.gateway.clients if snap.gateway is not None else None,
        gateway_in_flight=snap.gateway.in_flight if snap.gateway is not None else 0)


MINUTE_MS, DAY_MS = 60_000, 86_400_000
MAX_ATTEMPT_MS = 600_000  # as quota.lua: the longest attempt, which bounds how long an emptied store's minute is held
RESTARTED = "store restarted"
UNLISTED = "members no longer listed"  # the part of the window's use no listed member holds (forgotten ones')
CARRY_BYTES = 160  # quota.lua writes "until_min until_day u1 u2 u3 u4": six numbers
GROQ_COUNTS_MORE = "Groq counts more"


async def _windows(client: redis.Redis, prefix: str, now: float, keys: Sequence[bytes],
                   snapshots: Mapping[str, CoreSnapshot], skips: Skips,
                   live: set[str] | frozenset[str] = frozenset()) -> tuple[FleetWindow, ...]:
    """The organisation's windows from one reading of the store's state per model: each member's part (settled in
    the window + in flight, as the admissions count them) and, apart, what is held without being anyone's use:
    parts carried over an emptied store, its minute held full, what Groq counts beyond the fleet. The total is
    the sum of the same parts, so no part exceeds it. The snapshots only name the models and, where the store
    keeps no server limit, give the limit most members hold."""
    if not snapshots:
        return ()
    models = Counter(m.model for s in snapshots.values() for m in s.quota.models)
    default = _default_model(snapshots)
    names = [m for m, _ in models.most_common(MAX_MODELS)]
    now_ms = now * 1000
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(f"{prefix}epoch_at")
        pipe.smembers(f"{prefix}seeded")
        for model in names:
            pipe.hmget(f"{prefix}q:{model}:sum", ["mr", "dr", "mt", "dt", "fr", "ft"])
            pipe.hmget(f"{prefix}q:{model}:sig", [f"{k}{d}" for k in "xus" for d in range(1, 5)])
            pipe.hmget(f"{prefix}q:{model}:part", [k + f"|{d}".encode() for k in keys for d in range(1, 5)])
            pipe.hlen(f"{prefix}q:{model}:carry")
            pipe.get(f"{prefix}q:{model}:fresh")
        replies = await pipe.execute()
    carries = [await _carry(client, f"{prefix}q:{model}:carry", int(replies[5 + 5 * i] or 0), skips)
               for i, model in enumerate(names)]
    hour = await hour_use(client, prefix, names, now_ms)
    epoch_at = _numbers([replies[0]])[0]
    seeded = {bytes(m) for m in replies[1] or ()}
    rows = []
    for i, model in enumerate(names):
        sums, sig, parts = (_numbers(r) for r in replies[2 + 5 * i: 5 + 5 * i])  # sums: the flights, for the pace
        carry = _carried(*carries[i], seeded, now_ms)
        fresh = min(_numbers([replies[6 + 5 * i]])[0], epoch_at + MINUTE_MS + MAX_ATTEMPT_MS)
        for d, window in enumerate(DIMENSIONS):
            own = {member_name(k): max(0, int(parts[4 * j + d])) for j, k in enumerate(keys)}
            # What the store counts beyond the parts of the members listed (forgotten, or beyond the list) is
            # still use: a part of its own, so the total is what the admissions count (a trial: forgetting a
            # member that left made the day window read smaller, while admission still counted it).
            counted = max(0, int(sums[d])) + max(0, int(sums[4 if d < 2 else 5]))
            unlisted = counted - sum(own.values())
            if unlisted > 0:
                own[UNLISTED] = unlisted
            used = sum(own.values())
            # The limit the members running hold (one that left with a lower one of its own sets nothing: a
            # trial read "rpm 30/2" after an ask run with rpm=2 had left).
            holders = [s for name, s in snapshots.items() if name in live] or list(snapshots.values())
            held_by = Counter(w.limit for s in holders for m in s.quota.models if m.model == model
                              for w in m.windows if w.name == window)
            limit = int(sig[8 + d]) if sig[8 + d] > 0 else held_by.most_common(1)[0][0] if held_by else 0
            held, until, why = carry[d]
            if d in (0, 2) and fresh > now_ms and used + held < limit:
                held, until, why = limit - used, max(until, fresh), RESTARTED
            if sig[4 + d] > now_ms and sig[d] > 0:
                held, until, why = held + int(sig[d]), max(until, sig[4 + d]), why or GROQ_COUNTS_MORE
            last_hour = None if d in (0, 2) else hour[i][d // 2] + int(sums[4] if d == 1 else sums[5])
            if used or held or model == default:
                rows.append(FleetWindow(name(model), window, used, limit, own, last_hour, held, until / 1000, why))
    return tuple(rows)


async def _carry(client: redis.Redis, key: str, count: int, skips: Skips) -> tuple[list[bytes | None], list[bytes]]:
    """An emptied store's carried parts: every member's, not only the members listed now (the old store's members
    are gone from the new one's list, and a member that left or died never writes its own day back), and "?".
    Names by HRANDFIELD, each value measured first; at most MAX_MEMBERS + 1, as quota.lua counts them all."""
    if count <= 0:
        return [], []
    names = await cast(Any, client.hrandfield(key, min(count, MAX_MEMBERS + 1)))
    names = sorted(names if isinstance(names, list) else [names])
    skips.add(f"carried parts beyond the {MAX_MEMBERS + 1:,} read", count - len(names))
    return await read_sized(client, "HSTRLEN", key, names, CARRY_BYTES, "oversized carried parts", skips), names


def _carried(values: Sequence[bytes | None], members: Sequence[bytes], seeded: set[bytes],
             now_ms: float) -> list[tuple[int, float, str]]:
    """Per dimension: what members that are not writing their day back held when the store was emptied, and
    until when (store ms), as quota.lua's `carried` counts it."""
    held = [(0, 0.0, ""), (0, 0.0, ""), (0, 0.0, ""), (0, 0.0, "")]
    for member, value in zip(members, values, strict=True):
        if value is None or member in seeded:
            continue
        figures = _numbers([bytes(v) for v in value.split()])
        if len(figures) != 6:
            continue
        ends = (figures[0], figures[1], figures[0], figures[1])
        for d in range(4):
            if ends[d] > now_ms and figures[2 + d] > 0:
                count, until, _ = held[d]
                held[d] = (count + int(figures[2 + d]), max(until, ends[d]), RESTARTED)
    return held


def _numbers(values: Sequence[bytes | None]) -> list[float]:
    """A hash's figures as numbers; anything that is not one counts as 0 (as the Lua's `num` reads it)."""
    numbers = []
    for value in values:
        try:
            number = float(value) if value is not None else 0.0
        except ValueError:
            number = 0.0
        numbers.append(number if abs(number) < 2**63 else 0.0)
    return numbers
