"""The core's Groq path: quota, scheduler, sender, and the local endpoint when offline.

Composed here so `ResourceCore` only starts, stops and asks it. Without
`GROQ_API_KEY` the prompts go to a local endpoint: the one at `GROQ_BASE_URL`,
or one started in-process on `endpoint_host:endpoint_port` inside the core's
own event loop. Which one is in use is always in the snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from medops.core.clock import Clock
from medops.core.errors import MedopsError
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.prompt_input import check_request
from medops.core.groq.quota import QuotaBook, QuotaFactory
from medops.core.groq.requests import Priority, PromptRequest, PromptResult
from medops.core.groq.scheduler import Scheduler, SchedulerStopped, UnknownRequest
from medops.core.groq.sender import LOCAL_PLACEHOLDER_KEY, GroqSender, GroqTarget, choose_target
from medops.core.ledger.records import AdmissionStore, RecorderFanOut, RequestRecorder
from medops.core.settings.config import Settings
from medops.core.snapshot import (
    EndpointInfo,
    ModelQuota,
    PoolSnapshot,
    QuotaSnapshot,
    SchedulerSnapshot,
    StoreSnapshot,
)


class Ledgerish(AdmissionStore, RequestRecorder, Protocol):
    """What the Groq path wants from the ledger: admissions kept and requests recorded."""


class GroqPath:
    """Quota book, scheduler, sender and (offline) the in-process local endpoint."""

    def __init__(self, settings: Settings, clock: Clock, ledger: Ledgerish | None = None,
                 env: Mapping[str, str] | None = None, *, recorders: Sequence[RequestRecorder] = (),
                 quota_factory: QuotaFactory | None = None,
                 describe_store: Callable[[], StoreSnapshot] | None = None) -> None:
        """`recorders`: where finished requests go beside the ledger (the fleet's stream, metrics).
        `quota_factory` and `describe_store`: each model's quota kept elsewhere (the fleet's store)."""
        self._settings = settings
        self._clock = clock
        self._ledger = ledger
        self._target: GroqTarget = choose_target(settings, os.environ if env is None else env)
        self.quotas = QuotaBook(settings, clock, store=ledger, build=quota_factory, describe_store=describe_store)
        self.endpoint: LocalEndpoint | None = None
        if self._target.in_process:
            self.endpoint = LocalEndpoint(settings.models, host=settings.endpoint_host,
                                          port=settings.endpoint_port, clock=clock)
        self.sender: GroqSender | None = None
        self.scheduler: Scheduler | None = None
        self._ended = SchedulerSnapshot()  # what the last scheduler ended with: a stopped path still shows it
        self._recorders = RecorderFanOut([r for r in (ledger, *recorders) if r is not None])
        self._paused = False

    async def start(self) -> None:
        """Reload today's admissions, start the local endpoint if needed, then sender and scheduler."""
        if self.scheduler is not None:
            return
        if self._ledger is not None:
            await self.quotas.restore_async()
        target = self._target
        if self.endpoint is not None:
            await self.endpoint.start()
            target = replace(target, base_url=self.endpoint.url)
        self.sender = GroqSender(self._settings, target, self._clock)
        self.scheduler = Scheduler(self._settings, self.quotas, self.sender, self._clock, recorder=self._recorders)
        if self._paused:
            self.scheduler.pause()
        await self.scheduler.start()

    async def stop(self) -> None:
        """Fail what is unanswered, close the HTTP pool, stop the local endpoint; safe twice."""
        scheduler, sender = self.scheduler, self.sender
        self.scheduler = None
        if scheduler is not None:
            await scheduler.stop()
            self._ended = scheduler.snapshot()  # done and failed as it ended (those stop failed included)
        if sender is not None:
            await sender.close()
        if self.endpoint is not None:
            await self.endpoint.stop()

    async def ask(self, request: PromptRequest) -> PromptResult:
        """Check the prompt, queue it, and wait for the answer (or an error saying why not)."""
        check_request(request, self._settings)
        if self.scheduler is None:
            raise SchedulerStopped("the Groq path is not running; start the core first")
        return await self.scheduler.submit(request)

    def pause(self) -> None:
        """Hold queued prompts; those in flight finish."""
        self._paused = True
        if self.scheduler is not None:
            self.scheduler.pause()

    def resume(self) -> None:
        self._paused = False
        if self.scheduler is not None:
            self.scheduler.resume()

    def cancel_request(self, request_id: str, by: str) -> str:
        """Cancel a held request (see `Scheduler.cancel`); the state it was in. `UnknownRequest` if not held."""
        scheduler = self._running_scheduler()
        state = scheduler.state_of(request_id)
        if state is None or not scheduler.cancel(request_id, by):
            raise UnknownRequest(f"no request {request_id} is queued or in flight here (it may have been answered "
                                 "already); list them with `medops requests`")
        return state.value

    def give_up(self, request_id: str, error: MedopsError) -> bool:
        """End a request still queued with `error` (see `Scheduler.give_up`); False if it is not queued here."""
        return self.scheduler is not None and self.scheduler.give_up(request_id, error)

    def set_request_priority(self, request_id: str, priority: Priority) -> Priority:
        """Move a held request to `priority`; the priority it had (see `Scheduler.set_priority`)."""
        return self._running_scheduler().set_priority(request_id, priority)

    def _running_scheduler(self) -> Scheduler:
        if self.scheduler is None:
            raise SchedulerStopped("the Groq path is not running; start the core first")
        return self.scheduler

    def apply(self, settings: Settings) -> None:
        """Take changed settings while running: scheduler knobs, timeouts, retries, default model."""
        self._settings = settings
        if self.sender is not None:
            self.sender.apply(settings)
        if self.scheduler is not None:
            self.scheduler.apply(settings)

    # -- snapshot sections -----------------------------------------------------------

    def quota_snapshot(self) -> QuotaSnapshot:
        """Every model's windows and requests waiting for it, and which model a request naming none goes to."""
        book = self.quotas.snapshot()
        scheduler = self.scheduler
        models = book.models if scheduler is None else tuple(
            replace(model, waiting=scheduler.waiting_for(model.model)) for model in book.models)
        return replace(book, models=models, default_model=self._settings.default_model)

    def model_quota(self, model: str | None) -> ModelQuota | None:
        """One model's part of `quota_snapshot` (the default model's when None): one model's windows, not all."""
        quota = self.quotas.models.get(model or self._settings.default_model)
        if quota is None:
            return None
        windows = quota.snapshot()
        return windows if self.scheduler is None else replace(windows,
                                                              waiting=self.scheduler.waiting_for(windows.model))

    def scheduler_snapshot(self) -> SchedulerSnapshot:
        """The running scheduler's queues and counts; once stopped, the counts it ended with (nothing queued)."""
        return self.scheduler.snapshot() if self.scheduler is not None else self._ended

    def pools(self) -> tuple[PoolSnapshot, ...]:
        """The "http" pool (capacity only while stopped)."""
        if self.sender is None:
            return (PoolSnapshot(name="http", capacity=self._settings.http_max_connections),)
        return (self.sender.pool_snapshot(),)

    def endpoint_info(self) -> EndpointInfo:
        """Groq or the local endpoint, its URL, and whether the last attempt got an answer."""
        target = self._target
        if self.endpoint is not None:
            base_url = self.endpoint.url if self.endpoint.running else ""
            where = "in-process local endpoint (GROQ_API_KEY unset)"
        elif target.api_key == LOCAL_PLACEHOLDER_KEY:
            base_url, where = target.shown_url, "local endpoint at GROQ_BASE_URL (GROQ_API_KEY unset)"
        else:
            base_url, where = target.shown_url, "GROQ_API_KEY set"
        if self.sender is None:
            return EndpointInfo(kind=target.kind, base_url=base_url, healthy=False, detail=f"{where}; not started")
        failure = self.sender.last_failure
        detail = where if failure is None else f"{where}; last attempt: {failure}"
        return EndpointInfo(kind=target.kind, base_url=base_url, healthy=failure is None, detail=detail)

