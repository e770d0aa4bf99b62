"""`AttachedFleet`: the console's core when it runs with none (`medops --attach`), over the fleet only.

It keeps `CoreCommands` with no parts: it reads the fleet from the store at the
refresh interval (a background task; `snapshot()` never waits) and draws the
organisation as one `CoreSnapshot`: the quota windows the members share, with
each member's part; their queues, outcomes, pools and open alerts summed.
Intake and limits go to every member as fleet commands, whose answers are
handed to `on_answers`. It never joins the fleet: it registers no member,
holds no quota and is not counted when the members divide a window.
Everything that needs parts here (prompts, documents, the knowledge base,
the ledger's histories) raises `NoCoreHere` saying what to do instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from medops.core.clock import Clock, SystemClock
from medops.core.errors import ConfigError, MedopsError
from medops.core.fleet.commands import ANSWER_WAIT, Acknowledgement, Command, issue
from medops.core.fleet.membership import fleet_namespace
from medops.core.fleet.view import FleetUnavailable, FleetView, FleetWindow, read_fleet
from medops.core.groq.scheduler import REQUEST_ROWS, UnknownRequest
from medops.core.groq.wait_reason import FleetLine
from medops.core.ledger.history import AlertHistory, Before, RequestHistory
from medops.core.ledger.limit_history import LimitChangeHistory
from medops.core.ledger.metric_history import MetricHistory
from medops.core.settings.config import Settings
from medops.core.settings.live_changes import validated_change
from medops.core.settings.redact import redact_url
from medops.core.settings.store_url import check_store_url
from medops.core.snapshot import (
    CoreSnapshot,
    EndpointInfo,
    KnowledgeSnapshot,
    LedgerSnapshot,
    LimitChange,
    ModelQuota,
    PoolSnapshot,
    PriorityQueue,
    QuotaSnapshot,
    RequestRow,
    SchedulerSnapshot,
    ServerReport,
    StoreSnapshot,
    WindowUsage,
)
from medops.core.tasks import end_tasks
from medops.core.waits import percentile

if TYPE_CHECKING:
    from medops.core.documents.results import DocumentResult, ProgressCallback
    from medops.core.groq.requests import PromptRequest, PromptResult
    from medops.core.knowledge.entries import CodeEntry, SearchResults

log = logging.getLogger(__name__)

PRIORITIES = ("critical", "high", "normal")
RECENT_READS = 64  # round trips kept for the store's rtt figures
CHANGES_SHOWN = 50
SAME_COMMAND = 10.0  # seconds within which members' records of one change (same key, value, operator) are one
WITHOUT_ATTACH = "run `medops` without --attach for a console with its own core"
HISTORY = ("the history is in a core's ledger, and each member keeps its own: run `medops` (without --attach) "
           "with that member's MEDOPS_DATA_DIR; the Fleet tab (7) shows every member now")

Answers = Callable[[str, Sequence[Acknowledgement]], None]
"""Called with what was sent ("pause intake on every member") and each member's answer."""


class NoCoreHere(MedopsError):
    """A command that needs a core of its own, asked of a console attached to the fleet."""

    def __init__(self, what_to_do: str) -> None:
        super().__init__(f"attached to the fleet, no core here: {what_to_do}")


class AttachedFleet:
    """A `CoreCommands` over the fleet's store, with no parts of its own (`medops --attach`)."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None, clock: Clock | None = None, *,
                 answer_wait: float = ANSWER_WAIT) -> None:
        self._settings = settings
        self._env = dict(os.environ if env is None else env)
        self._clock = clock or SystemClock()
        self._answer_wait = answer_wait
        self._namespace = ""
        self._view: FleetView | None = None
        self._built: CoreSnapshot | None = None
        self._down_since: float | None = None
        self._last_error = ""
        self._round_trips: deque[float] = deque(maxlen=RECENT_READS)
        self._started_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.on_answers: Answers | None = None  # where the members' answers to intake and limit commands go
        self.sent: list[tuple[Command, list[Acknowledgement]]] = []  # every command sent and its answers

    # -- lifecycle and state -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._started_at is not None

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def attached(self) -> bool:
        return True

    async def probe(self) -> FleetView:
        """Read the fleet once: the store must be set and answer (`ConfigError` says what to set or what failed)."""
        url = self._settings.store_url
        if not url:
            raise ConfigError("--attach watches the fleet through its store, and none is set: set store_url "
                              "(MEDOPS_STORE_URL, e.g. redis://host:6379/0) to the fleet's Redis, or "
                              f"{WITHOUT_ATTACH}")
        check_store_url(url)
        self._namespace = fleet_namespace(self._settings, self._env)
        try:
            return await self._read()
        except FleetUnavailable as exc:
            raise FleetUnavailable(f"cannot attach to the fleet: {exc}") from None

    async def start(self) -> None:
        """Read the fleet once (as `probe`), then keep reading it at the refresh interval; idempotent."""
        if self.running:
            return
        self._absorb(await self.probe())
        self._started_at = self._clock.monotonic()
        self._task = asyncio.create_task(self._follow(), name="medops-attached-fleet")

    async def stop(self) -> None:
        """Stop reading; commands still waiting for answers are dropped (they were sent). Safe to call twice."""
        self._started_at = None
        await end_tasks([t for t in (self._task, *self._sending) if t is not None])
        self._task = None

    def snapshot(self) -> CoreSnapshot:
        """The fleet as last read (never waits); the store's state as of the last attempt."""
        built = self._built or CoreSnapshot(taken_at=self._clock.wall(), uptime=0.0)
        uptime = self._clock.monotonic() - self._started_at if self._started_at is not None else 0.0
        store = built.quota.store or self._store_state(0)
        store = replace(store, state="down" if self._down_since is not None else "up", down_since=self._down_since,
                        last_error=self._last_error, rtt_p50_ms=self._rtt(50), rtt_p99_ms=self._rtt(99))
        return replace(built, uptime=uptime, quota=replace(built.quota, store=store))

    def model_quota(self, model: str | None) -> ModelQuota | None:
        return self.snapshot().quota.of(model)

    async def wait_for_first_sample(self) -> CoreSnapshot:
        return self.snapshot()  # start() has read the fleet once already

    async def fleet_view(self) -> FleetView:
        """The fleet as last read, for the console's Fleet tab (one reading of the store serves both)."""
        if self._view is None or self._down_since is not None:
            raise FleetUnavailable(self._last_error or "the fleet has not been read yet")
        return self._view

    async def _read(self) -> FleetView:
        started = self._clock.monotonic()
        view = await read_fleet(self._settings.store_url, self._namespace, self._env.get("MEDOPS_STORE_PASSWORD"))
        self._round_trips.append((self._clock.monotonic() - started) * 1000)
        return view

    async def _follow(self) -> None:
        """Read the fleet every refresh interval; a store that does not answer is said so, and read again.

        It ends when `stop` clears `running`, not only on the cancel: redis-py can turn a cancel that lands
        mid-command into a ConnectionError (seen under load), which the except below would otherwise outlive."""
        while self.running:
            await asyncio.sleep(self._settings.refresh_interval)
            try:
                view = await self._read()
                built = fleet_snapshot(view, self._store_state(sum(m.state == "alive" for m in view.members)))
            except Exception as exc:  # anything a value can be: said, and read again; this task never dies
                reason = str(exc) if isinstance(exc, FleetUnavailable) else \
                    f"the fleet could not be read ({type(exc).__name__}, unexpected; see the log)"
                if self._down_since is None:
                    log.warning("fleet store unreadable: %s", reason, exc_info=not isinstance(exc, FleetUnavailable))
                    self._down_since = self._clock.wall()
                self._last_error = reason
                continue
            self._down_since, self._last_error = None, ""
            self._view, self._built = view, built

    def _absorb(self, view: FleetView) -> None:
        self._view = view
        self._built = fleet_snapshot(view, self._store_state(sum(m.state == "alive" for m in view.members)))

    def _store_state(self, alive: int) -> StoreSnapshot:
        return StoreSnapshot(url=redact_url(self._settings.store_url), instance="", state="up", down_since=None,
                             rtt_p50_ms=0.0, rtt_p99_ms=0.0, members_alive=alive, share=0, clock_skew=0.0, pending=0,
                             attached=True)

    def _rtt(self, pct: float) -> float:
        return percentile(sorted(self._round_trips), pct)

    # -- intake and limits: to every member, through the store ----------------------------

    def pause_intake(self) -> None:
        """Ask every member to hold new work; the answers go to `on_answers`."""
        self._send("pause", "pause intake on every member")

    def resume_intake(self) -> None:
        """Ask every member to release the work it holds."""
        self._send("resume", "resume intake on every member")

    def set_limit(self, key: str, value: str | int | float, by: str = "console") -> Settings:
        """Check the change by the config's rules here (refused at once if it breaks them), then send it to
        every member, which applies and records it (who: the operator, user@host). The settings as changed."""
        changed = validated_change(self._settings, key, value, by)
        self._settings = changed  # the refresh interval, if that was it, is this view's too
        self._send("set_limit", f"set {key} = {value} on every member", key, str(value))
        return changed

    def unpin(self, key: str, by: str = "console") -> bool:
        raise NoCoreHere(f"the auto-tuner runs in each member; give {key} a value here (sent to every member), "
                         f"or hand it back on the member's own console")

    # -- requests: to the member holding them -------------------------------------------

    def cancel_request(self, request_id: str, by: str = "console") -> str:
        """Send the cancel to the member whose published snapshot holds the request; its answer follows."""
        member = self._holder(request_id)
        self._send("cancel_request", f"cancel request {request_id} on {member}", request_id, target=member)
        return f"sent to {member}: cancel request {request_id}; its answer follows"

    def set_request_priority(self, request_id: str, priority: str, by: str = "console") -> str:
        """Send the priority change to the member holding the request; its answer follows."""
        member = self._holder(request_id)
        self._send("set_request_priority", f"set request {request_id}'s priority to {priority} on {member}",
                   request_id, priority, target=member)
        return f"sent to {member}: request {request_id} to {priority}; its answer follows"

    def _holder(self, request_id: str) -> str:
        """The member whose last published snapshot lists the request; `UnknownRequest` if none does."""
        view = self._view
        for instance, published in (view.snapshots.items() if view is not None else ()):
            if any(row.request_id == request_id for row in published.scheduler.requests):
                return instance
        raise UnknownRequest(f"no member lists request {request_id} (it may have been answered already, or lie "
                             "past the rows a member publishes); list them with `medops requests`")

    def _send(self, op: str, what: str, key: str = "", value: str = "", target: str = "*") -> None:
        task = asyncio.create_task(self._issue(op, what, key, value, target), name=f"medops-fleet-{op}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _issue(self, op: str, what: str, key: str, value: str, target: str = "*") -> None:
        try:
            command, acks = await issue(self._settings.store_url, self._namespace, op, target, key, value,
                                        self._env.get("MEDOPS_STORE_PASSWORD"), wait=self._answer_wait)
        except MedopsError as exc:
            acks = [Acknowledgement("fleet store", "no answer", str(exc))]
        except Exception as exc:  # said to the operator by type only, never lost in the task
            log.exception("fleet command %s failed", op)
            acks = [Acknowledgement("fleet store", "no answer", f"{type(exc).__name__} (unexpected; see the log)")]
        else:
            self.sent.append((command, acks))
        if self.on_answers is not None:
            self.on_answers(what, acks)

    # -- alerts: each member's own ----------------------------------------------------------

    def acknowledge_alert(self, name: str) -> bool:
        raise NoCoreHere("alerts are each member's own; acknowledge them on that member's console")

    def silence_alert(self, name: str, seconds: float) -> float:
        raise NoCoreHere("alerts are each member's own; silence them on that member's console")

    def excuse_loop_lag(self, seconds: float) -> None:
        """Nothing to excuse: no core shares this loop."""

    # -- what needs a core -----------------------------------------------------------------

    async def ask(self, request: PromptRequest) -> PromptResult:
        raise NoCoreHere(f"prompts need one; {WITHOUT_ATTACH}, or send it with `medops ask`")

    async def extract(self, path: str | Path, case_id: str | None = None,
                      on_progress: ProgressCallback | None = None) -> DocumentResult:
        raise NoCoreHere(f"documents need one; {WITHOUT_ATTACH}, or use `medops extract FILE`")

    def cancel_document(self, job_id: str) -> bool:
        return False  # no document runs here

    def intake_folders(self) -> tuple[Path, ...]:
        return ()  # documents are taken in by a core; this view has none

    async def complete_intake_path(self, typed: str, limit: int) -> list[str]:
        raise NoCoreHere(f"intake folders belong to a core; {WITHOUT_ATTACH}")

    async def check_intake_path(self, typed: str) -> Path:
        raise NoCoreHere(f"intake folders belong to a core; {WITHOUT_ATTACH}, or use `medops extract FILE`")

    async def knowledge_ready(self) -> None:
        raise NoCoreHere(f"the knowledge base opens with one; {WITHOUT_ATTACH}, or use `medops kb search WORDS`")

    async def kb_search(self, text: str, limit: int = 20) -> SearchResults:
        raise NoCoreHere(f"the knowledge base opens with one; {WITHOUT_ATTACH}, or use `medops kb search WORDS`")

    async def kb_code(self, code: str) -> CodeEntry | None:
        raise NoCoreHere(f"the knowledge base opens with one; {WITHOUT_ATTACH}, or use `medops kb code CODE`")

    async def kb_children(self, code: str) -> tuple[CodeEntry, ...]:
        raise NoCoreHere(f"the knowledge base opens with one; {WITHOUT_ATTACH}")

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        raise NoCoreHere(HISTORY)

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        raise NoCoreHere(HISTORY)

    async def limit_change_history(self, limit: int = 50, key: str | None = None) -> LimitChangeHistory:
        """The changes the members published (this run of each), newest first: their ledgers are theirs."""
        changes = [c for c in self.snapshot().limit_changes if key is None or c.key == key][:limit]
        return LimitChangeHistory(tuple(changes), earlier_runs=False,
                                  note="attached to the fleet: the members' changes in their current runs; "
                                       "earlier runs are in each member's ledger (`medops limits history`)")

    async def metric_history(self, span: float, max_points: int = 400,
                             end_wall: float | None = None) -> MetricHistory:
        raise NoCoreHere(HISTORY)


def fleet_snapshot(view: FleetView, store: StoreSnapshot) -> CoreSnapshot:
    """The fleet as one snapshot: the organisation's windows with each member's part, and the members'
    queues, outcomes, pools and open alerts summed (members that left or are gone left out)."""
    alive = [m for m in view.members if m.state.present]
    present = {m.instance for m in alive}
    snapshots = {name: snap for name, snap in view.snapshots.items() if name in present}  # checked at the edge
    newest = view.newest(snapshots)
    return CoreSnapshot(
        taken_at=view.read_at, uptime=0.0,
        endpoint=newest.endpoint if newest is not None else EndpointInfo(),
        quota=_quota(view, snapshots, store),
        scheduler=replace(_scheduler(snapshots.values()), requests=_requests(snapshots),
                          requests_held=sum(s.scheduler.requests_held for s in snapshots.values())),
        pools=_pools(snapshots.values()),
        alerts=tuple(replace(alert, name=f"{name}/{alert.name}") for name, snap in sorted(snapshots.items())
                     for alert in snap.alerts if alert.cleared_at is None),
        limit_changes=_changes(snapshots.values()),
        ledger=LedgerSnapshot("off", "attached to the fleet: each member keeps its own ledger"),
        knowledge=KnowledgeSnapshot("off", "attached to the fleet: no knowledge base here"),
        paused=bool(alive) and all(m.paused for m in alive))


def _quota(view: FleetView, snapshots: Mapping[str, CoreSnapshot], store: StoreSnapshot) -> QuotaSnapshot:
    """The organisation's windows as the store counts them (`view.windows`), never a snapshot's: a member
    cannot replace them by publishing a snapshot dated ahead. The members' own figures (429s, holds, the
    server's last word, when each window frees) are summed or taken at their worst."""
    by_model: dict[str, list[FleetWindow]] = defaultdict(list)
    for window in view.windows:
        by_model[window.model].append(window)
    models = []
    for model, windows in by_model.items():
        same = [m for s in snapshots.values() for m in s.quota.models if m.model == model]
        models.append(ModelQuota(
            model, tuple(WindowUsage(w.name, w.used, w.limit,
                                     reset_in=max((x.reset_in for m in same for x in m.windows if x.name == w.name),
                                                  default=0.0),
                                     blocked_for=max((x.blocked_for for m in same for x in m.windows
                                                      if x.name == w.name), default=0.0),
                                     parts=tuple(sorted(w.parts.items())), last_hour=w.last_hour, held=w.held,
                                     held_until=w.held_until, held_why=w.held_why) for w in windows),
            same[0].server if same else ServerReport(),
            rate_limited=sum(m.rate_limited for m in same), refused_too_large=sum(m.refused_too_large for m in same),
            capacity_exceeded=sum(m.capacity_exceeded for m in same),
            capacity_hold=max((m.capacity_hold for m in same), default=0.0), waiting=sum(m.waiting for m in same)))
    return QuotaSnapshot(tuple(models), view.default_model(), store)


def _scheduler(snapshots: Iterable[CoreSnapshot]) -> SchedulerSnapshot:
    schedulers = [s.scheduler for s in snapshots]
    depths: dict[str, int] = defaultdict(int)
    for scheduler in schedulers:
        for queue in scheduler.queues:
            depths[queue.priority] += queue.depth
    return SchedulerSnapshot(
        queues=tuple(PriorityQueue(p, depths.get(p, 0)) for p in PRIORITIES) if schedulers else (),
        in_flight=sum(s.in_flight for s in schedulers), concurrency=sum(s.concurrency for s in schedulers),
        completed=sum(s.completed for s in schedulers), failed=sum(s.failed for s in schedulers),
        rejected=sum(s.rejected for s in schedulers), retried=sum(s.retried for s in schedulers),
        paused=bool(schedulers) and all(s.paused for s in schedulers))


def _requests(snapshots: Mapping[str, CoreSnapshot]) -> tuple[RequestRow, ...]:
    """Every member's published request rows, each labelled with its member, at most `REQUEST_ROWS`: in flight
    first, then by how long they have waited (the members' send orders cannot be interleaved exactly). A row
    the store put off says whose requests go first (`snapshots` holds the members still running only)."""
    rows = [replace(row, member=name) for name, snap in snapshots.items() for row in snap.scheduler.requests]
    rows.sort(key=lambda r: (r.state != "sending", -r.age))
    shown = rows[:REQUEST_ROWS]
    if any(row.deferred for row in shown):
        line = FleetLine(snapshots)
        shown = [line.give(row.member, row, snapshots[row.member].taken_at) if row.deferred else row for row in shown]
    return tuple(shown)


def _pools(snapshots: Iterable[CoreSnapshot]) -> tuple[PoolSnapshot, ...]:
    """Each pool summed over the members (its waits: the worst member's)."""
    by_name: dict[str, list[PoolSnapshot]] = defaultdict(list)
    for snap in snapshots:
        for pool in snap.pools:
            by_name[pool.name].append(pool)
    return tuple(PoolSnapshot(name, sum(p.capacity for p in pools), sum(p.active for p in pools),
                              sum(p.queued for p in pools), sum(p.completed for p in pools),
                              sum(p.errors for p in pools), sum(p.timeouts for p in pools),
                              max(p.wait_p50 for p in pools), max(p.wait_p95 for p in pools))
                 for name, pools in by_name.items())


def _changes(snapshots: Iterable[CoreSnapshot]) -> tuple[LimitChange, ...]:
    """The members' limit changes, newest first; a fleet command each member recorded shows once."""
    kept: list[LimitChange] = []
    for change in sorted((c for s in snapshots for c in s.limit_changes), key=lambda c: c.at, reverse=True):
        # one command reaches the members within a few heartbeats of each other: the same change, once
        if not any((k.key, k.new, k.by) == (change.key, change.new, change.by) and k.at - change.at < SAME_COMMAND
                   for k in kept):
            kept.append(change)
    return tuple(kept[:CHANGES_SHOWN])

