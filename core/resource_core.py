"""`ResourceCore`: owns every part, starts and stops them in order, takes snapshots.

It runs inside whatever event loop calls `start()` (the console's, or the CLI's),
and is the only object the console holds: panes read `snapshot()`, forms call
the async commands.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from medops.core.clock import Clock, SystemClock
from medops.core.documents.case_entry import store_document
from medops.core.documents.intake import Intake
from medops.core.documents.pipeline import DocumentPipeline, DocumentResult, ProgressCallback
from medops.core.errors import ConfigError, MedopsError
from medops.core.executors import Executors
from medops.core.groq.path import GroqPath
from medops.core.groq.requests import PromptRequest, PromptResult
from medops.core.knowledge.service import CodeEntry, KnowledgeService, SearchHit
from medops.core.ledger.history import AlertHistory, Before, RequestHistory, alert_page, request_page
from medops.core.ledger.limit_history import LimitChangeHistory, latest_changes
from medops.core.ledger.metric_history import MetricHistory, metrics_over
from medops.core.ledger.writer import Ledger
from medops.core.memory.case_memory import CaseMemory, check_case_id
from medops.core.memory.contexts import AgentContextPool
from medops.core.settings.config import Settings
from medops.core.settings.live_changes import LimitHistory, apply_live, validated_change
from medops.core.settings.paths import Locations
from medops.core.snapshot import ContextPoolSnapshot, CoreSnapshot, SlotsSnapshot
from medops.core.watch.tick import CoreTick
from medops.core.watch.tuner import TUNED_KNOBS


class CoreNotRunning(MedopsError):
    """A command reached the core before `start()` or after `stop()`."""


class ResourceCore:
    """The resource core: config, clock and every part, behind one snapshot."""

    def __init__(self, settings: Settings, locations: Locations, clock: Clock | None = None, *,
                 shares_cases: bool = False) -> None:
        """`shares_cases`: other processes on the same data folder find this core's case memory
        (`CaseMemory.running`); for a long-lived core such as the console's, never a command's own."""
        self.settings = settings
        self.locations = locations
        self.clock = clock or SystemClock()
        self._shares_cases = shares_cases
        self._started_at: float | None = None
        self._paused = False
        self._cases: CaseMemory | None = None
        self._contexts: AgentContextPool | None = None
        self.limit_history = LimitHistory()
        self.knowledge = KnowledgeService(locations.knowledge_db, settings, self.clock)
        self.ledger = Ledger(locations.ops_db, self.clock, settings.ledger_flush_interval,
                             settings.metrics_retention_days)
        self.executors = Executors(settings, self.clock)
        self.intake = Intake.from_settings(settings, locations, io=self.executors.io)
        self.documents = DocumentPipeline(settings, self.intake, self.clock)
        self.tick = CoreTick(self.clock, lambda: self.settings, locations.data_dir, self.executors,
                             self.snapshot, lambda: getattr(self, "ledger", None))
        self.tick.attach_query_cache(self.knowledge.cache)
        # Quota, scheduler, gateway; a local endpoint in this loop when GROQ_API_KEY is unset.
        self.groq = GroqPath(settings, self.clock, self.ledger)

    @property
    def running(self) -> bool:
        return self._started_at is not None

    async def start(self) -> None:
        """Create the data folder and start every part; idempotent."""
        if self.running:
            return
        self.locations.ensure()
        # Off the loop: reserving a large segment (and reclaiming dead runs' ones) takes a while.
        shared_for = self.locations.data_dir if self._shares_cases else None
        self._cases = await asyncio.to_thread(CaseMemory.from_settings, self.settings, shared_for)
        self._contexts = AgentContextPool(self.settings.agent_context_pool_size, self.clock,
                                          self.settings.context_leak_seconds)
        await self.ledger.start()  # before the quota, which reloads today's admissions from it
        self.knowledge.start()  # builds knowledge.duckdb off the loop on first run; queries wait for it
        await self.groq.start()  # after the ledger: the quota reloads today's admissions from it
        self._started_at = self.clock.monotonic()
        self.executors.reopen()
        self.intake.ensure_default(self.locations)
        await self.documents.start()
        self.tick.start()

    async def stop(self) -> None:
        """Stop every part in reverse order; safe to call twice."""
        await self.tick.stop()
        await self.documents.stop()
        if self._cases is not None:
            self._cases.close()  # unlinks the segment; workers still attached keep their mapping
            self._cases = None
        self._contexts = None
        # Queued jobs are cancelled; running ones finish on their own threads.
        self.executors.shutdown(wait=False)
        self._started_at = None
        await self.knowledge.stop()
        await self.groq.stop()  # before the ledger, which records the requests it fails
        await self.ledger.stop()  # last: it writes what the other parts recorded while stopping

    def snapshot(self) -> CoreSnapshot:
        """One consistent, immutable view of every part."""
        uptime = self.clock.monotonic() - self._started_at if self._started_at is not None else 0.0
        knowledge, duckdb_pool, query_cache = self.knowledge.snapshot()
        return CoreSnapshot(taken_at=self.clock.wall(), uptime=uptime, paused=self._paused,
                            pools=(*self.executors.snapshots(), duckdb_pool, self.documents.pool_snapshot(),
                                   *self.groq.pools()),
                            endpoint=self.groq.endpoint_info(), quota=self.groq.quota_snapshot(),
                            scheduler=self.groq.scheduler_snapshot(),
                            documents=self.documents.snapshot(), cache=query_cache,
                            knowledge=knowledge, ledger=self.ledger.snapshot(), system=self.tick.system(),
                            alerts=self.tick.alerts.alerts(), tuner=self.tick.tuner_snapshot(),
                            limit_changes=self.limit_history.changes(),
                            slots=self._cases.snapshot() if self._cases is not None else SlotsSnapshot(),
                            contexts=self._contexts.snapshot() if self._contexts is not None else ContextPoolSnapshot())

    @property
    def cases(self) -> CaseMemory:
        """The shared case store (worker processes attach with `cases.handle`)."""
        if self._cases is None:
            raise CoreNotRunning("case memory is not open; start the core first")
        return self._cases

    @property
    def contexts(self) -> AgentContextPool:
        """The pool of agent contexts."""
        if self._contexts is None:
            raise CoreNotRunning("the agent context pool is not running; start the core first")
        return self._contexts

    @property
    def intake_dirs(self) -> tuple[Path, ...]:
        """The folders documents are accepted from."""
        return self.intake.folders

    async def extract(self, path: str | Path, case_id: str | None = None,
                      on_progress: ProgressCallback | None = None) -> DocumentResult:
        """Extract a document's text in a worker process; with `case_id` the text goes into case memory."""
        if not self.running:
            raise CoreNotRunning("the core is not running; start it before extracting documents")
        if case_id is not None:
            check_case_id(case_id)  # before the work, not after it
        result = await self.documents.extract(path, on_progress)
        if case_id is not None:
            # On the I/O threads: the writer lock may be held a moment by a worker process.
            await asyncio.get_running_loop().run_in_executor(self.executors.io, store_document, self.cases,
                                                             case_id, result)
        return result

    def cancel_document(self, job_id: str) -> bool:
        """Cancel a queued or running document job; False if it is unknown or already over."""
        return self.documents.cancel(job_id)

    def pause_intake(self) -> None:
        """Hold new work in the queues; what is in flight finishes."""
        self._paused = True
        self.groq.pause()
        self.documents.pause()

    def resume_intake(self) -> None:
        self._paused = False
        self.groq.resume()
        self.documents.resume()

    def acknowledge_alert(self, name: str) -> bool:
        """Mark an open alert as seen (still listed, no longer news); False if it is not open."""
        return self.tick.alerts.acknowledge(name)

    def silence_alert(self, name: str, seconds: float) -> float:
        """Announce nothing about alert `name` for `seconds` (0 lifts it); returns the wall time it ends."""
        return self.tick.alerts.silence(name, seconds)

    def excuse_loop_lag(self, seconds: float) -> None:
        """The embedding app's own work will hold the shared loop for up to `seconds` (a console redrawing
        after a resize): that lag is not the core stalling, so the loop-lag figures leave it out."""
        self.tick.lag.excuse(seconds)

    def set_limit(self, key: str, value: str | int | float, by: str = "console") -> Settings:
        """Change one limit while running, checked by the config file's rules, applied at once and recorded.

        The record goes to snapshot.limit_changes and to the ledger's limit_changes table.
        A knob the tuner sizes (io_threads, query_cache_size) is pinned: the tuner leaves the operator's
        value alone until `unpin(key)` or tuner_enabled is switched off and on again.

        Refused with a ConfigError (key, value, allowed range, source) when out of range, and with
        `RestartNeeded` for keys sized at start. Returns the new settings.
        """
        old = self.settings
        new = validated_change(old, key, value, by)
        self.settings = new  # the tick, alerts and tuner read this every time
        apply_live(self, key, new)
        change = self.limit_history.record(self.clock.wall(), key, old, new, by)
        self.ledger.record_limit_change(change)  # buffered: written with the ledger's next flush
        if key in TUNED_KNOBS:
            self.tick.pins.pin(key, change.new, change.at, by)
        elif key == "tuner_enabled" and new.tuner_enabled and not old.tuner_enabled:
            self.tick.pins.clear()  # switching the tuner back on hands it every knob again
        return new

    def unpin(self, key: str, by: str = "console") -> bool:
        """Hand a knob the operator set back to the tuner; recorded like a limit change. False if not pinned.

        Refused with a ConfigError for a key the tuner does not size.
        """
        if key not in TUNED_KNOBS:
            raise ConfigError(f"{key!r} is not sized by the auto-tuner (it sizes only {', '.join(TUNED_KNOBS)}): "
                              f"give it a value instead of auto")
        if not self.tick.pins.unpin(key):
            return False
        change = self.limit_history.record_handback(self.clock.wall(), key, self.settings, by)
        self.ledger.record_limit_change(change)
        return True

    async def limit_change_history(self, limit: int = 50, key: str | None = None) -> LimitChangeHistory:
        """The `limit` latest limit changes across runs (only `key`'s if given), newest first.

        Read from the ledger off the event loop, with this run's changes it has not written yet. With the
        ledger off, this run's changes only, and `earlier_runs` False with the reason in `note`.
        """
        return await latest_changes(self.ledger, self.limit_history.changes(), limit, key)

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        """A page of finished Groq requests across runs, newest first (figures only, never prompt text).

        `before`: the previous page's `older` mark (None: the latest). Read from the ledger off the event
        loop, with this run's requests it has not written; with the ledger off, this run's latest only,
        and `earlier_runs` False with the reason in `note`.
        """
        return await request_page(self.ledger, before, limit, model, agent)

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        """A page of alert announcements (opened, repeated or escalated, cleared) across runs, newest first."""
        return await alert_page(self.ledger, before, limit)

    async def metric_history(self, span: float, max_points: int = 400,
                             end_wall: float | None = None) -> MetricHistory:
        """CPU % and memory % over the `span` seconds up to `end_wall` (default: now), from the ledger.

        Boiled down in SQL, on the ledger's thread, to at most `max_points` points (the highest per bucket).
        With the ledger off: no points, `available` False and the reason in `note`.
        """
        now = self.clock.wall()
        end = now if end_wall is None else end_wall
        return await metrics_over(self.ledger, end - span, end, max_points,
                                  self.settings.metrics_retention_days, now)

    async def ask(self, request: PromptRequest) -> PromptResult:
        """Send one prompt through scheduler, quota and gateway; the answer or an error saying why not."""
        self._require_running()
        return await self.groq.ask(request)

    def _require_running(self) -> None:
        if not self.running:
            raise CoreNotRunning("the resource core is not running; start it first")

    async def kb_search(self, text: str, limit: int = 20) -> tuple[SearchHit, ...]:
        """ICD-10-CM codes whose descriptions hold the most of the text's words, best first."""
        self._require_running()
        return await self.knowledge.search(text, limit)

    async def kb_code(self, code: str) -> CodeEntry | None:
        """One ICD-10-CM code ("R07.9" or "R079"), or None if there is no such code."""
        self._require_running()
        return await self.knowledge.code(code)

    async def kb_children(self, code: str) -> tuple[CodeEntry, ...]:
        """The codes one level below `code`."""
        self._require_running()
        return await self.knowledge.children(code)
