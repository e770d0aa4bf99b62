"""This instance's membership in the fleet: heartbeat, epoch, write-back, publishing and commands.

Every second a member renews its place in the store (alive for MEMBER_TTL),
keeps its long flights from lapsing, learns how many members are alive (its
local share if the store goes away), publishes its snapshot and finished
requests, and carries out operators' commands addressed to it. When the store
answers after an absence, or comes back empty (a new epoch), the member writes
back what it admitted before anything more is admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from medops.core import __version__
from medops.core.clock import Clock
from medops.core.fleet.commands import CommandInbox, Handler
from medops.core.fleet.entries import SNAPSHOT_BYTES
from medops.core.fleet.forget import drop_rows
from medops.core.fleet.pace import PACE_INTERVAL, PACE_KEPT, fleet_pace
from medops.core.fleet.publish import (
    ALERT_STREAM,
    ALERT_STREAM_MAXLEN,
    LEFT_KEEP,
    REQUEST_STREAM,
    SNAPSHOT_TTL,
    STREAM_MAXLEN,
    RecordBuffer,
    alert_fields,
    published,
    stream_fields,
)
from medops.core.fleet.quota import FleetQuota
from medops.core.fleet.records import AdmissionRecord
from medops.core.fleet.store import (
    HEARTBEAT_INTERVAL,
    MEMBER_TTL,
    QuotaStore,
    StoreUnavailable,
    namespace_for,
    new_member,
)
from medops.core.fleet.wire import Call, Entry, HeartbeatArgs, LegacyWire, Wire, decode_heartbeat, speaks_current
from medops.core.groq.sender import LOCAL_PLACEHOLDER_KEY, choose_target
from medops.core.settings.config import Settings
from medops.core.settings.store_url import check_store_url
from medops.core.snapshot import LIST_ITEMS, CoreSnapshot, StoreSnapshot
from medops.core.tasks import end_tasks

log = logging.getLogger(__name__)

SEED_GRACE = 30.0  # the longest an emptied store waits for its members to write their day back
SYNC_CHUNK = 500
# The longest a stopping member waits for its queued settles: milliseconds normally; with the store frozen the
# first call fails within store_timeout and the rest are skipped at once.
STOP_FLUSH = 5.0
MAX_OLD_MEMBERS = 1000  # members of the old wire read to decide which wire to speak
# Short CLI runs: they leave no row behind them (a `medops status` a minute is not a member worth listing).
PASSING_ROLES = frozenset({"status", "extract", "kb"})

class Fleet:
    """This instance's membership in the fleet: heartbeat, epoch, write-back and the store's figures."""

    def __init__(self, store: QuotaStore, instance: str, description: str, clock: Clock, flight_bound: float,
                 starvation_bound: float, seed_grace: float = SEED_GRACE, attempt_bound: float = 30.0,
                 passing: bool = False) -> None:
        """`passing`: a short run that forgets its row as it leaves (else it stays listed as left).
        `seed_grace`: the longest an emptied store admits nothing while the members write their day back
        (it resumes as soon as every member the fleet had has written; one that died never will). `attempt_bound`: the
        longest one request can take (request_timeout); `flight_bound`: how long after its last contact with
        the store a member may still admit on its local share (and the store reserves that share for it)."""
        self.attempt_bound = attempt_bound
        self.passing = passing
        self.store = store
        self.instance = instance
        self.description = description
        self._clock = clock
        self.flight_bound = flight_bound
        self.starvation_bound = starvation_bound
        self.quotas: dict[str, FleetQuota] = {}
        # The wire this member speaks: the current one, or the old one while members that know only it are alive.
        self.wire: Wire = Wire(store.namespace)
        self.epoch: str | None = None
        self.seeding = False
        self.ever_seen = False
        self.share_divisor = 0  # members last seen alive (0: the store was never reached)
        self.seed_grace = seed_grace
        self._next = 0
        self._outbox: asyncio.Queue[tuple[AdmissionRecord | None, Call]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._beat_lock = asyncio.Lock()
        store.on_down = self._went_down
        self.records = RecordBuffer()  # finished requests for the fleet's stream
        self.snapshot_source: Callable[[], CoreSnapshot] | None = None  # what this member publishes
        self.command_handler: Handler | None = None  # carries out operators' commands on this member's core
        self._inbox: CommandInbox | None = None
        self.on_join: Callable[[], Awaitable[None]] | None = None  # once the store first answers (shared_settings)
        self._joined = False
        self._snapshot_cut = ""  # how the last published snapshot was cut to fit ("": whole)
        self._pace: dict[str, tuple[int, int]] = {}  # the fleet's last hour per model (requests, tokens)
        self._pace_at = -math.inf  # monotonic time of that reading

    def _went_down(self) -> None:
        for quota in self.quotas.values():
            quota.enter_local_share()  # the local share decides until the store is back

    def new_id(self) -> str:
        return f"{self.instance}:{self.new_seq()}"

    def new_seq(self) -> int:
        self._next += 1
        return self._next

    async def start(self) -> None:
        await self.heartbeat()
        await self._join_once()
        self._tasks = [asyncio.create_task(self._beat_loop(), name="medops-fleet-heartbeat"),
                       asyncio.create_task(self._drain(), name="medops-fleet-outbox")]

    async def stop(self) -> None:
        # The queue goes out before the tasks end, the call being sent included: a cancel landing inside a
        # settle would lose it, and its flight would hold the fleet's room until store_flight_bound.
        if self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.flush(), STOP_FLUSH)
        self._stopping = True
        await end_tasks(self._tasks)
        self._tasks = []
        # What is still queued goes out now, so the fleet sees this instance's settles promptly.
        while not self._outbox.empty():
            await self._send_one(self._outbox.get_nowait())
        if self.store.up:
            await self.publish(ttl=LEFT_KEEP)  # its last figures, listed with it once it has left
            with contextlib.suppress(StoreUnavailable):  # else its heartbeat lapses on its own
                await self.store.call(self.wire.leave(self.instance))
                if self.passing:
                    await self._forget_self()
        await self.store.close()

    async def _forget_self(self) -> None:
        try:
            await drop_rows(self.store.client, self.store.prefix, (self.instance,))
        except (RedisError, OSError) as exc:  # its row stays, listed as left, until forgotten
            log.warning("this run's row stays in the fleet list (%s): `medops fleet forget --left` clears it",
                        type(exc).__name__)

    def send(self, record: AdmissionRecord, call: Call) -> None:
        """Queue a settle or release; a record whose call fails stays unsynced for write-back."""
        if not self.store.up:
            return
        self._outbox.put_nowait((record, call))

    def signal(self, call: Call) -> None:
        """Queue a 429 block, 498 hold or header tightening: it binds every instance."""
        if self.store.up:
            self._outbox.put_nowait((None, call))

    async def _drain(self) -> None:
        while not self._stopping:
            item = await self._outbox.get()
            try:
                await self._send_one(item)
            finally:
                self._outbox.task_done()

    async def flush(self) -> None:
        """Wait until every queued settle, release and signal has been sent (or found the store away)."""
        await self._outbox.join()

    async def _send_one(self, item: tuple[AdmissionRecord | None, Call]) -> None:
        record, call = item
        if not self.store.up or call.library != self.wire.library:
            return  # one for the wire this member spoke before: its write-back carries it
        try:
            await self.store.call(call)
        except StoreUnavailable:
            return
        if record is not None:
            record.synced = True

    async def _beat_loop(self) -> None:
        while not self._stopping:
            await self._clock.sleep(HEARTBEAT_INTERVAL)
            try:
                await self.heartbeat()
                await self._join_once()
                if self._clock.monotonic() - self._pace_at >= PACE_INTERVAL:
                    await self.read_pace()
                await self.publish()
                await self.take_commands()
            except Exception:  # the heartbeat must outlive any one bad answer
                log.exception("fleet heartbeat failed")

    async def _join_once(self) -> None:
        """Once the store has answered: mark where the command stream ends, then run the join hook (it reads the
        fleet-wide settings). A setting written after the mark comes as a command; one before it is in the store."""
        if self._joined or not self.store.up:
            return
        await self.take_commands()
        if self.command_handler is not None and self._inbox is None:
            return  # the mark could not be taken: next beat
        if self.on_join is not None:
            try:
                await self.on_join()
            except (RedisError, OSError) as exc:
                log.warning("the fleet-wide settings could not be read (%s): trying again next beat",
                            type(exc).__name__)
                return
        self._joined = True

    async def read_pace(self) -> None:
        """Read what entered the fleet's day windows in the last hour (each model's burn rate is the
        organisation's while the store answers); read only, every PACE_INTERVAL, after a heartbeat."""
        if not self.store.up or not self.quotas:
            return
        try:
            now_ms = self.store.to_store_wall_ms(self._clock.wall())
            self._pace = await fleet_pace(self.store.client, self.wire.prefix, tuple(self.quotas), now_ms)
            self._pace_at = self._clock.monotonic()
        except (RedisError, OSError) as exc:  # the burn rate waits for the next reading
            log.warning("the fleet's pace not read this beat (%s)", type(exc).__name__)

    def pace(self) -> dict[str, tuple[int, int]]:
        """The fleet's last hour per model, (requests, tokens), if read within PACE_KEPT; else none."""
        return self._pace if self._clock.monotonic() - self._pace_at <= PACE_KEPT else {}

    async def take_commands(self) -> None:
        """Carry out the operators' commands addressed to this member since the last beat."""
        if not self.store.up or self.command_handler is None:
            return
        try:
            if self._inbox is None:
                inbox = CommandInbox(self.store.client, self.store.prefix, self.instance, self.command_handler)
                await inbox.start()
                self._inbox = inbox
            await self._inbox.poll()
        except (RedisError, OSError) as exc:
            log.warning("fleet commands not read this beat (%s)", type(exc).__name__)

    async def publish(self, ttl: float = SNAPSHOT_TTL) -> None:
        """This member's snapshot (kept `ttl` seconds), the requests it finished and the alerts it announced since
        the last beat."""
        if not self.store.up or self.snapshot_source is None:
            return
        requests = [stream_fields(self.instance, record) for record in self.records.take()]
        alerts = [alert_fields(self.instance, alert) for alert in self.records.take_alerts()]
        snapshot = published(self.snapshot_source())
        if snapshot.cut != self._snapshot_cut:  # said when it starts, changes and ends, not every beat
            if snapshot.cut:
                log.warning("this member's snapshot is %d bytes, over what the fleet's readers take (%d bytes, "
                            "lists of %d items): published with %s", snapshot.whole_bytes, SNAPSHOT_BYTES,
                            LIST_ITEMS, snapshot.cut)
            else:
                log.info("this member's snapshot is published whole again (%d bytes)", snapshot.whole_bytes)
            self._snapshot_cut = snapshot.cut
        with contextlib.suppress(StoreUnavailable):  # the next beat notices and says so
            await self.store.publish(self.instance, snapshot.body, ttl,
                                     ((REQUEST_STREAM, requests, STREAM_MAXLEN),
                                      (ALERT_STREAM, alerts, ALERT_STREAM_MAXLEN)))

    async def heartbeat(self) -> None:
        """Stay alive in the store; when it answers after an absence or empty, write back before admitting."""
        async with self._beat_lock:
            models = tuple((name, _quad(q.window_limits())) for name, q in self.quotas.items())
            returning = self.ever_seen and not self.store.up
            if returning and not await self._write_back(everything=False):
                # Back from an absence: what was admitted meanwhile goes in before this member's beat is
                # current again, so the store keeps reserving its share until then.
                return
            try:
                await self._choose_wire()
                reply = decode_heartbeat(await self.store.call(self.wire.heartbeat(HeartbeatArgs(
                    self.instance, self.description, int(MEMBER_TTL * 1000), int(self.flight_bound * 1000),
                    self.epoch or "", int(self.seed_grace * 1000), uuid.uuid4().hex, models))), len(models))
            except StoreUnavailable:
                return
            epoch, seeding_ms, alive = reply.epoch, reply.seeding_ms, reply.alive
            if epoch != self.epoch:
                # A new epoch: the store was emptied (or this member is new). Its whole day goes back in, then
                # it says so: admissions resume once every member the fleet had has (or the cap passes).
                hold_since = self._emptied_since()
                if hold_since is not None and not await self._write_back(everything=True, hold_since=hold_since):
                    return
                try:
                    await self.store.call(self.wire.seeded(self.instance, self.share_divisor))
                except StoreUnavailable:
                    return
                returning = returning or self.epoch is not None
                self.epoch = epoch
            self.seeding = seeding_ms > 0
            self.ever_seen = True
            self.store.members_alive = alive
            if alive != self.share_divisor:
                self.share_divisor = max(1, alive)
                for quota in self.quotas.values():
                    quota.reshare()
            for quota, usage, parts in zip(self.quotas.values(), reply.usages, reply.parts, strict=True):
                quota.take_view(usage, reply.now_ms)
                quota.forget_old()
                quota.take_parts(reply.now_ms, parts)
            if not self.store.up:  # back, or reached for the first time: the store decides again
                for quota in self.quotas.values():
                    quota.store_is_back()
            self.store.mark_up()
            if returning:
                for quota in self.quotas.values():
                    quota.resignal()

    async def _choose_wire(self) -> None:
        """Speak the old wire while members that know only it are alive (a rolling upgrade: they count in its
        windows, so this member must too), the current one otherwise. Either way the windows of the other are
        new to this member: its epoch there differs, so its whole day goes in before it admits (as into an
        emptied store)."""
        old = LegacyWire(self.store.namespace)
        described = await self.store.alive_descriptions(old.prefix, MAX_OLD_MEMBERS)  # its own is marked
        wanted: Wire = old if any(not speaks_current(d) for d in described) else Wire(self.store.namespace)
        if wanted.version != self.wire.version:
            if wanted.version < Wire.version:
                log.warning("members of an older medops speak only the quota's wire v%d on this store: speaking it "
                            "too until they have all stopped (one set of windows for everyone)", wanted.version)
            else:
                log.warning("no member speaks only the quota's wire v%d any more: moving to v%d (writing this "
                            "member's day into its windows first)", self.wire.version, wanted.version)
            self.wire = wanted

    def _emptied_since(self) -> int | None:
        """Whether a new epoch may be an emptied store to write back into, and after when (store ms) it began if
        so. A member of the old epoch: always. A new member that could not reach the store at first: if the
        epoch began after that try (the store may have been emptied meanwhile, its old members all gone)."""
        if self.epoch is not None:
            return 0
        first_try = self.store.down_since
        return None if first_try is None else self.store.to_store_wall_ms(first_try)

    async def _write_back(self, everything: bool, hold_since: int = 0) -> bool:
        """What this member admitted and the store may not know. Into an emptied store (`everything`): its whole
        day, and the other members' parts as it last saw them, for those that are gone and cannot write theirs;
        the minute hold if the epoch began after `hold_since` (store ms)."""
        for quota in self.quotas.values():
            pending: list[tuple[AdmissionRecord | None, Entry, Any]] = list(
                quota.entries(only_unsynced=not everything, store=self.store))
            if everything:
                pending += [(None, entry, None) for entry in quota.carried_entries(hold_since)]
            for start in range(0, len(pending), SYNC_CHUNK):
                chunk = pending[start:start + SYNC_CHUNK]
                try:
                    await self.store.call(self.wire.sync(quota.model, self.instance, int(self.flight_bound * 1000),
                                                         [entry for _, entry, _ in chunk]))
                except StoreUnavailable:
                    return False
                for record, _, sent in chunk:
                    # A settle or release that came in meanwhile is not in what was sent: it stays unsynced.
                    if record is not None:
                        record.synced = record.state() == sent
        return True

    def pending(self) -> int:
        return sum(1 for q in self.quotas.values() for r in q.records() if not r.synced)

    def snapshot(self) -> StoreSnapshot:
        return self.store.snapshot(self.instance, self.share_divisor, self.pending(), self.seeding)


def join(settings: Settings, clock: Clock, env: Mapping[str, str], role: str) -> Fleet:
    """This process's place in the fleet: a store connection, its Groq organisation's namespace, a new id.
    `ConfigError` naming what is wrong with a store_url the client cannot use (settings built in code are not
    checked as a file's are)."""
    check_store_url(settings.store_url)
    store = QuotaStore(settings.store_url, fleet_namespace(settings, env), clock,
                       password=env.get("MEDOPS_STORE_PASSWORD"), budget=settings.store_timeout)
    member = new_member(role, __version__, clock)
    return Fleet(store, member.instance, member.describe(), clock, settings.store_flight_bound,
                 settings.starvation_bound, attempt_bound=settings.request_timeout, passing=role in PASSING_ROLES)


def _quad(values: list[int]) -> tuple[int, int, int, int]:
    return (values[0], values[1], values[2], values[3])


def fleet_namespace(settings: Settings, env: Mapping[str, str]) -> str:
    """The store namespace of this Groq organisation: a hash of the key, or of the endpoint without one."""
    target = choose_target(settings, env)
    key = target.api_key if target.api_key != LOCAL_PLACEHOLDER_KEY else None
    return namespace_for(key, target.base_url if not target.in_process else "in-process", settings.store_namespace)
