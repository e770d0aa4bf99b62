"""`ResourceCore`: owns every part, starts and stops them in order, takes snapshots.

It runs inside whatever event loop calls `start()` (the console's, or the CLI's)
and implements `CoreCommands` (contract.py), the only way the console reaches it:
panes read `snapshot()`, forms and CLI commands call the commands. The parts are
private; agents that embed the core also use `cases` and `contexts`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from medops.core.burn_rate import fleet_paced
from medops.core.clock import Clock, SystemClock
from medops.core.contract import CoreCommands
from medops.core.documents.case_entry import store_document
from medops.core.documents.intake import COMPLETION_LIMIT, Intake
from medops.core.documents.pipeline import DocumentPipeline
from medops.core.documents.results import DocumentResult, ProgressCallback
from medops.core.errors import ConfigError, MedopsError
from medops.core.executors import Executors
from medops.core.fleet.commands import Command
from medops.core.fleet.membership import join
from medops.core.fleet.quota import make_fleet_quota
from medops.core.fleet.shared_settings import join_plan, read_settings, when
from medops.core.fleet.store_wait import within_store_wait
from medops.core.groq.path import GroqPath
from medops.core.groq.requests import Priority, PromptRequest, PromptResult
from medops.core.knowledge.entries import CodeEntry, SearchResults
from medops.core.knowledge.service import KnowledgeService
from medops.core.ledger.history import AlertHistory, Before, RequestHistory, alert_page, request_page
from medops.core.ledger.limit_history import LimitChangeHistory, latest_changes
from medops.core.ledger.metric_history import MetricHistory, metrics_over
from medops.core.ledger.records import RequestRecorder
from medops.core.ledger.writer import Ledger
from medops.core.memory.case_memory import CaseMemory, check_case_id
from medops.core.memory.contexts import AgentContextPool
from medops.core.settings.config import Settings, show_value
from medops.core.settings.live_changes import (
    LIVE,
    TUNED_KNOBS,
    Applies,
    LimitHistory,
    LivePart,
    validated_change,
)
from medops.core.settings.paths import Locations
from medops.core.snapshot import (
    ContextPoolSnapshot,
    CoreSnapshot,
    GatewaySnapshot,
    ModelQuota,
    QuotaSnapshot,
    SettingValue,
    SlotsSnapshot,
)
from medops.core.watch.metrics import MetricsServer
from medops.core.watch.tick import CoreTick
from medops.core.watch.tuner import MetricsSource

log = logging.getLogger("medops.core")


class CoreNotRunning(MedopsError):
    """A command reached the core before `start()` or after `stop()`."""


class ResourceCore(CoreCommands):
    """The resource core: config, clock and every part, behind one snapshot and the `CoreCommands`."""

    def __init__(self, settings: Settings, locations: Locations, clock: Clock | None = None, *,
                 shares_cases: bool = False, tuner_metrics: MetricsSource | None = None,
                 role: str = "library", gateway: Callable[[], GatewaySnapshot] | None = None) -> None:
        """`shares_cases`: other processes on the same data folder find this core's case memory
        (`CaseMemory.running`); for a long-lived core such as the console's, never a command's own.
        `tuner_metrics`: where the auto-tuner reads its figures (default: the core's own monitor).
        `role` names this process in the fleet (console, ask, worker, library; a CLI command its name) when a
        store is set. `gateway`: the section a gateway serving through this core adds to each snapshot (so
        the fleet sees its clients and keys)."""
        self._gateway = gateway
        self._settings = settings
        self._locations = locations
        self._clock = clock or SystemClock()
        self._shares_cases = shares_cases
        self._started_at: float | None = None
        self._last: CoreSnapshot | None = None  # taken as `stop()` began: what a member leaving publishes
        self._paused = False
        self._cases: CaseMemory | None = None
        self._contexts: AgentContextPool | None = None
        self._limit_history = LimitHistory()
        self._executors = Executors(settings, self._clock)
        self._knowledge = KnowledgeService(locations.knowledge_db, settings, self._clock, self._executors.cpu)
        # In a fleet, members sharing a data folder each keep a ledger file of their own.
        self._ledger = Ledger(locations.ops_db, self._clock, settings.ledger_flush_interval,
                              settings.metrics_retention_days, file_per_instance=bool(settings.store_url))
        self._intake = Intake.from_settings(settings, locations, io=self._executors.io)
        self._documents = DocumentPipeline(settings, self._intake, self._clock)
        self._tick = CoreTick(self._clock, lambda: self._settings, locations.data_dir, self._executors,
                              self.snapshot, lambda: self._ledger, tuner_metrics)
        self._tick.attach_query_cache(self._knowledge.cache)
        # With a store, one quota for the fleet: this member's heartbeat, snapshot and commands go through it.
        self._fleet = join(settings, self._clock, os.environ, role) if settings.store_url else None
        self._metrics = MetricsServer(self.snapshot, settings.metrics_host, settings.metrics_port,
                                      settings.metrics_allow_remote) \
            if settings.metrics_port else None
        recorders: list[RequestRecorder] = [r for r in (self._fleet.records if self._fleet else None,
                                                        self._metrics.requests if self._metrics else None) if r]
        # Quota, scheduler, gateway; a local endpoint in this loop when GROQ_API_KEY is unset.
        self._groq = GroqPath(settings, self._clock, self._ledger, recorders=recorders,
                              quota_factory=make_fleet_quota(self._fleet) if self._fleet else None,
                              describe_store=self._fleet.snapshot if self._fleet else None)
        if self._fleet is not None:
            self._fleet.snapshot_source = self._published  # each heartbeat, for the fleet's views
            self._fleet.command_handler = self._fleet_command
            self._fleet.on_join = self._take_fleet_settings  # a late joiner runs with the fleet-wide settings too
            self._tick.announce_to(self._fleet.records)  # alert announcements go to the fleet's stream too
        # Who takes a live change of each kind (settings/live_changes.py names the kind of every key).
        self._appliers: dict[LivePart, Applies] = {"groq": self._groq, "executors": self._executors,
                                                   "documents": self._documents}

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._started_at is not None

    @property
    def settings(self) -> Settings:
        """The settings in force, live changes included."""
        return self._settings

    @property
    def attached(self) -> bool:
        """False: this core's parts run here."""
        return False

    async def start(self) -> None:
        """Create the data folder and start every part; idempotent."""
        if self.running:
            return
        self._last = None
        for fixed in self._locations.ensure(check_intake=not self._settings.intake_dirs):
            log.warning("%s", fixed)
        self._executors.reopen()  # before the knowledge build, which runs on the CPU threads
        # Off the loop: reserving a large segment (and reclaiming dead runs' ones) takes a while.
        shared_for = self._locations.data_dir if self._shares_cases else None
        self._cases = await asyncio.to_thread(CaseMemory.from_settings, self._settings, shared_for)
        self._contexts = AgentContextPool(self._settings.agent_context_pool_size, self._clock,
                                          self._settings.context_leak_seconds)
        await self._ledger.start()  # before the quota, which reloads today's admissions from it
        if self._fleet is not None:
            await self._fleet.start()  # joins the fleet; a store that does not answer is retried every second
        self._knowledge.start()  # builds knowledge.duckdb off the loop on first run; queries wait for it
        await self._groq.start()  # after the ledger: the quota reloads today's admissions from it
        self._started_at = self._clock.monotonic()
        self._intake.ensure_default(self._locations)
        for missing in self._intake.missing_folders():
            log.warning("%s", missing)
        await self._documents.start()
        self._tick.start()
        if self._metrics is not None:
            await self._metrics.start()

    async def stop(self) -> None:
        """Stop every part in reverse order; safe to call twice."""
        if self.running:
            self._last = self.snapshot()  # before any part stops: each stopped part's own figures are zeros
        if self._metrics is not None:
            await self._metrics.stop()
        await self._tick.stop()
        await self._documents.stop()
        if self._cases is not None:
            self._cases.close()  # unlinks the segment; workers still attached keep their mapping
            self._cases = None
        self._contexts = None
        self._started_at = None
        await self._knowledge.stop()  # before the CPU threads go: a build in progress finishes on them
        # Queued jobs are cancelled; running ones finish on their own threads.
        self._executors.shutdown(wait=False)
        await self._groq.stop()  # before the ledger, which records the requests it fails
        if self._fleet is not None:
            await self._fleet.stop()  # its last settles go to the store, then it leaves the fleet
        await self._ledger.stop()  # last: it writes what the other parts recorded while stopping

    def _quota_snapshot(self) -> QuotaSnapshot:
        """The quota's windows; on a fleet whose store answers, with the organisation's pace (the burn rate)."""
        quota = self._groq.quota_snapshot()
        return fleet_paced(quota, self._fleet.pace()) if self._fleet is not None else quota

    def snapshot(self) -> CoreSnapshot:
        """One consistent, immutable view of every part."""
        uptime = self._clock.monotonic() - self._started_at if self._started_at is not None else 0.0
        knowledge, duckdb_pool, query_cache = self._knowledge.snapshot()
        return CoreSnapshot(taken_at=self._clock.wall(), uptime=uptime, paused=self._paused,
                            pools=(*self._executors.snapshots(), duckdb_pool, self._documents.pool_snapshot(),
                                   *self._groq.pools()),
                            endpoint=self._groq.endpoint_info(), quota=self._quota_snapshot(),
                            scheduler=self._groq.scheduler_snapshot(),
                            documents=self._documents.snapshot(), cache=query_cache,
                            knowledge=knowledge, ledger=self._ledger.snapshot(), system=self._tick.system(),
                            alerts=self._tick.alerts.alerts(), tuner=self._tick.tuner_snapshot(),
                            limit_changes=self._limit_history.changes(),
                            slots=self._cases.snapshot() if self._cases is not None else SlotsSnapshot(),
                            contexts=self._contexts.snapshot() if self._contexts is not None else ContextPoolSnapshot(),
                            gateway=self._gateway() if self._gateway is not None else None,
                            live_settings=tuple(SettingValue(key, show_value(getattr(self._settings, key)))
                                                for key in LIVE))

    def _published(self) -> CoreSnapshot:
        """What this member publishes: its snapshot; while stopping and once stopped, the figures it had when
        `stop()` began (uptime, case memory, pools, alerts), with the requests' counts as the Groq path ended
        them, so the fleet lists a member that left with what it did, not a blank (#28)."""
        if self._last is None:
            return self.snapshot()
        return replace(self._last, taken_at=self._clock.wall(), scheduler=self._groq.scheduler_snapshot())

    def model_quota(self, model: str | None) -> ModelQuota | None:
        """One model's windows, as `snapshot().quota.of(model)` has them, without the rest of the snapshot."""
        return self._groq.model_quota(model)

    async def wait_for_first_sample(self) -> CoreSnapshot:
        """A snapshot taken once the resource monitor has sampled (before that every system figure is zero)."""
        self._require_running()
        await self._tick.next_tick()
        return self.snapshot()

    @property
    def cases(self) -> CaseMemory:
        """The shared case store, for agents that embed the core (worker processes attach with `cases.handle`)."""
        if self._cases is None:
            raise CoreNotRunning("case memory is not open; start the core first")
        return self._cases

    @property
    def contexts(self) -> AgentContextPool:
        """The pool of agent contexts, for agents that embed the core."""
        if self._contexts is None:
            raise CoreNotRunning("the agent context pool is not running; start the core first")
        return self._contexts

    # -- documents ---------------------------------------------------------------------

    def intake_folders(self) -> tuple[Path, ...]:
        """The folders documents are accepted from."""
        return self._intake.folders

    async def complete_intake_path(self, typed: str, limit: int = COMPLETION_LIMIT) -> list[str]:
        """Paths inside the intake folders that complete `typed`, folders ending in '/'."""
        return await self._intake.complete_async(typed, limit)

    async def check_intake_path(self, typed: str) -> Path:
        """The document `typed` names (relative to an intake folder, or absolute); `IntakeRefused` says why not."""
        return await self._intake.check_async(typed, relative_to_intake=True)

    async def extract(self, path: str | Path, case_id: str | None = None,
                      on_progress: ProgressCallback | None = None) -> DocumentResult:
        """Extract a document's text in a worker process; with `case_id` the text goes into case memory."""
        if not self.running:
            raise CoreNotRunning("the core is not running; start it before extracting documents")
        if case_id is not None:
            check_case_id(case_id)  # before the work, not after it
        result = await self._documents.extract(path, on_progress)
        if case_id is not None:
            # On the I/O threads: the writer lock may be held a moment by a worker process.
            await asyncio.get_running_loop().run_in_executor(self._executors.io, store_document, self.cases,
                                                             case_id, result)
        return result

    def cancel_document(self, job_id: str) -> bool:
        """Cancel a queued or running document job; False if it is unknown or already over."""
        return self._documents.cancel(job_id)

    # -- intake and limits -------------------------------------------------------------

    @property
    def metrics_url(self) -> str:
        """Where Prometheus scrapes this core ("" when metrics_port is 0 or the core is not running)."""
        return self._metrics.url if self._metrics is not None else ""

    async def _fleet_command(self, command: Command) -> tuple[bool, str]:
        """An operator's command from the fleet's store: carried out like the console's own, recorded with who."""
        if command.op == "pause":
            self.pause_intake()
            return True, "intake paused: queued work waits, in-flight work finishes"
        if command.op == "resume":
            self.resume_intake()
            return True, "intake resumed"
        if command.op == "set_limit":
            self.set_limit(command.key, command.value, by=f"{command.issued_by()} (fleet)")
            return True, f"{command.key} = {command.value}"
        by = f"{command.issued_by()} (fleet)"
        if command.op == "cancel_request":
            return True, self.cancel_request(command.key, by=by)
        if command.op == "set_request_priority":
            return True, self.set_request_priority(command.key, command.value, by=by)
        return False, (f"unknown command {command.op!r}; this member knows pause, resume, set_limit, "
                       "cancel_request and set_request_priority")

    async def _take_fleet_settings(self) -> None:
        """On joining the fleet: apply the fleet-wide settings kept in the store through `set_limit` (so each is
        recorded in the limit history with who set it), and say so on the log (stderr for CLI runs)."""
        assert self._fleet is not None
        stored = await read_settings(self._fleet.store.client, self._fleet.store.prefix)
        for why in stored.refused:
            log.warning("a fleet-wide setting in the store was refused (not applied): %s", why)
        plan = join_plan(self._settings, stored)
        applied = []
        for setting in plan.apply:
            was = show_value(getattr(self._settings, setting.key))
            try:
                self.set_limit(setting.key, setting.value, by=setting.origin())
            except MedopsError as exc:  # a value this member's other settings rule out (io_threads_min > max)
                log.warning("the fleet-wide %s = %s was not applied here: %s", setting.key, setting.value, exc)
                continue
            applied.append(f"{setting.key}={setting.value} (was {was}; set by {setting.set_by()} at "
                           f"{when(setting.at)})")
        if applied:
            log.warning("applied fleet settings from the store: %s", "; ".join(applied))
        for setting, own in plan.kept:
            log.warning("kept this member's own %s = %s over the fleet-wide %s (%s is set per member; listed as an "
                        "override by `medops fleet settings`)", setting.key, own, setting.value, setting.key)

    # -- requests held by the scheduler -----------------------------------------------

    def cancel_request(self, request_id: str, by: str = "console") -> str:
        """Cancel a held Groq request; its caller hears who cancelled it. Recorded with who (ids only)."""
        was = self._groq.cancel_request(request_id, by)
        change = self._limit_history.record_request_action(self._clock.wall(), request_id, was, "cancelled", by)
        self._ledger.record_limit_change(change)
        return f"request {request_id} cancelled (it was {was})"

    def set_request_priority(self, request_id: str, priority: str, by: str = "console") -> str:
        """Move a held Groq request to `priority`, within its bound. Recorded with who (ids only)."""
        wanted = Priority.parse(priority)
        was = self._groq.set_request_priority(request_id, wanted)
        if was != wanted:
            change = self._limit_history.record_request_action(self._clock.wall(), request_id, was.label,
                                                               wanted.label, by)
            self._ledger.record_limit_change(change)
        return f"request {request_id} priority {was.label} -> {wanted.label}"

    def pause_intake(self) -> None:
        """Hold new work in the queues; what is in flight finishes."""
        self._paused = True
        self._groq.pause()
        self._documents.pause()

    def resume_intake(self) -> None:
        """Release the work held by `pause_intake`."""
        self._paused = False
        self._groq.resume()
        self._documents.resume()

    def acknowledge_alert(self, name: str) -> bool:
        """Mark an open alert as seen (still listed, no longer news); False if it is not open."""
        return self._tick.alerts.acknowledge(name)

    def silence_alert(self, name: str, seconds: float) -> float:
        """Announce nothing about alert `name` for `seconds` (0 lifts it); returns the wall time it ends."""
        return self._tick.alerts.silence(name, seconds)

    def excuse_loop_lag(self, seconds: float) -> None:
        """The embedding app's own work will hold the shared loop for up to `seconds` (a console redrawing
        after a resize): that lag is not the core stalling, so the loop-lag figures leave it out."""
        self._tick.lag.excuse(seconds)

    def set_limit(self, key: str, value: str | int | float, by: str = "console") -> Settings:
        """Change one limit while running, checked by the config file's rules, applied at once and recorded.

        The record goes to snapshot.limit_changes and to the ledger's limit_changes table.
        A knob the tuner sizes (io_threads, query_cache_size) is pinned: the tuner leaves the operator's
        value alone until `unpin(key)` or tuner_enabled is switched off and on again.

        Refused with a ConfigError (key, value, allowed range, source) when out of range, and with
        `RestartNeeded` for keys sized at start. Returns the new settings.
        """
        old = self._settings
        new = validated_change(old, key, value, by)
        self._settings = new  # the tick, alerts and tuner read this every time
        part = LIVE[key]
        if part in self._appliers:
            self._appliers[part].apply(new)
        change = self._limit_history.record(self._clock.wall(), key, old, new, by)
        self._ledger.record_limit_change(change)  # buffered: written with the ledger's next flush
        if part == "tuner":  # the tuner's knobs are sized by the tick, which holds the operator's pins
            self._tick.pin(key, getattr(new, key), change)
        elif key == "tuner_enabled" and new.tuner_enabled and not old.tuner_enabled:
            self._tick.pins.clear()  # switching the tuner back on hands it every knob again
        return new

    def unpin(self, key: str, by: str = "console") -> bool:
        """Hand a knob the operator set back to the tuner; recorded like a limit change. False if not pinned.

        Refused with a ConfigError for a key the tuner does not size.
        """
        if key not in TUNED_KNOBS:
            raise ConfigError(f"{key!r} is not sized by the auto-tuner (it sizes only {', '.join(TUNED_KNOBS)}): "
                              f"give it a value instead of auto")
        if not self._tick.pins.unpin(key):
            return False
        change = self._limit_history.record_handback(self._clock.wall(), key, self._settings, by)
        self._ledger.record_limit_change(change)
        return True

    # -- history across runs -----------------------------------------------------------

    async def limit_change_history(self, limit: int = 50, key: str | None = None) -> LimitChangeHistory:
        """The `limit` latest limit changes across runs (only `key`'s if given), newest first.

        Read from the ledger off the event loop, with this run's changes it has not written yet. With the
        ledger off, this run's changes only, and `earlier_runs` False with the reason in `note`.
        """
        return await latest_changes(self._ledger, self._limit_history.changes(), limit, key)

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        """A page of finished Groq requests across runs, newest first (figures only, never prompt text).

        `before`: the previous page's `older` mark (None: the latest). Read from the ledger off the event
        loop, with this run's requests it has not written; with the ledger off, this run's latest only,
        and `earlier_runs` False with the reason in `note`.
        """
        return await request_page(self._ledger, before, limit, model, agent)

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        """A page of alert announcements (opened, repeated or escalated, cleared) across runs, newest first."""
        return await alert_page(self._ledger, before, limit)

    async def metric_history(self, span: float, max_points: int = 400,
                             end_wall: float | None = None) -> MetricHistory:
        """CPU % and memory % over the `span` seconds up to `end_wall` (default: now), from the ledger.

        Boiled down in SQL, on the ledger's thread, to at most `max_points` points (the highest per bucket).
        With the ledger off: no points, `earlier_runs` False and the reason in `note`.
        """
        now = self._clock.wall()
        end = now if end_wall is None else end_wall
        return await metrics_over(self._ledger, end - span, end, max_points,
                                  self._settings.metrics_retention_days, now)

    # -- prompts and the knowledge base ------------------------------------------------

    async def ask(self, request: PromptRequest) -> PromptResult:
        """Send one prompt through scheduler, quota and gateway; the answer or an error saying why not.

        On a fleet member whose store has never answered, `StoreNeverReached` after store_wait s (it admits nothing
        until the store answers)."""
        self._require_running()
        if self._fleet is None or self._fleet.ever_seen:
            return await self._groq.ask(request)
        return await within_store_wait(self._groq.ask(request), self._fleet.snapshot, self._settings.store_wait,
                                       self._clock, partial(self._groq.give_up, request.request_id))

    def _require_running(self) -> None:
        if not self.running:
            raise CoreNotRunning("the resource core is not running; start it first")

    async def knowledge_ready(self) -> None:
        """Wait until the knowledge base can answer (the first run builds it); raises why if it cannot."""
        self._require_running()
        await self._knowledge.ready()

    async def kb_search(self, text: str, limit: int = 20) -> SearchResults:
        """ICD-10-CM codes for a code or words, best first (see KnowledgeService.search), and the count of all."""
        self._require_running()
        return await self._knowledge.search(text, limit)

    async def kb_code(self, code: str) -> CodeEntry | None:
        """One ICD-10-CM code ("R07.9" or "R079"), or None if there is no such code."""
        self._require_running()
        return await self._knowledge.code(code)

    async def kb_children(self, code: str) -> tuple[CodeEntry, ...]:
        """The codes one level below `code`."""
        self._require_running()
        return await self._knowledge.children(code)
