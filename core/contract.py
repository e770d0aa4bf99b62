"""`CoreCommands`: every command the console may call on a resource core, in one typed contract.

`ResourceCore` implements it for a core running in this process. An attached view
of a fleet member (no parts here, snapshots read from a shared store) implements
the same contract, so nothing the console holds may depend on the parts being
local: commands take and return plain values (frozen dataclasses, settings,
paths), `snapshot()` returns the latest view without waiting, and the quick
controls (limits, pause, cancel) return at once, being either applied here or
handed on. Errors are `MedopsError`s whose messages are safe to show.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the command's types; importing them here would load the parts
    from medops.core.documents.results import DocumentResult, ProgressCallback
    from medops.core.groq.requests import PromptRequest, PromptResult
    from medops.core.knowledge.entries import CodeEntry, SearchResults
    from medops.core.ledger.history import AlertHistory, Before, RequestHistory
    from medops.core.ledger.limit_history import LimitChangeHistory
    from medops.core.ledger.metric_history import MetricHistory
    from medops.core.settings.config import Settings
    from medops.core.snapshot import CoreSnapshot, ModelQuota


class CoreCommands(Protocol):
    """What the console (its app, panes, forms and CLI commands) may ask of a core."""

    # -- lifecycle and state -----------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        ...

    @property
    def settings(self) -> Settings:
        """The settings in force, live changes included."""
        ...

    @property
    def attached(self) -> bool:
        """True for a view attached to the fleet with no parts here (`medops --attach`): prompts, documents,
        the knowledge base and the ledger's histories need a core and raise why; intake and limits go to
        every member through the store."""
        ...

    async def start(self) -> None:
        """Start the core (or attach to it); idempotent."""
        ...

    async def stop(self) -> None:
        """Stop (or detach); safe to call twice."""
        ...

    def snapshot(self) -> CoreSnapshot:
        """The latest consistent view of every part; never waits."""
        ...

    def model_quota(self, model: str | None) -> ModelQuota | None:
        """`snapshot().quota.of(model)` without taking the rest of the snapshot (the gateway reads it for every
        answer's headers); None for a model with no limits here."""
        ...

    async def wait_for_first_sample(self) -> CoreSnapshot:
        """A snapshot taken once the resource monitor has sampled (before that every system figure is zero)."""
        ...

    # -- prompts and documents ---------------------------------------------------------

    async def ask(self, request: PromptRequest) -> PromptResult:
        """Send one prompt through scheduler, quota and gateway; the answer or an error saying why not."""
        ...

    async def extract(self, path: str | Path, case_id: str | None = None,
                      on_progress: ProgressCallback | None = None) -> DocumentResult:
        """Extract a document's text; with `case_id` the text goes into that case's memory."""
        ...

    def cancel_document(self, job_id: str) -> bool:
        """Cancel a queued or running document job; False if it is unknown or already over."""
        ...

    def intake_folders(self) -> tuple[Path, ...]:
        """The folders documents are accepted from."""
        ...

    async def complete_intake_path(self, typed: str, limit: int) -> list[str]:
        """Paths inside the intake folders that complete `typed`, folders ending in '/'."""
        ...

    async def check_intake_path(self, typed: str) -> Path:
        """The document `typed` names (relative to an intake folder, or absolute); `IntakeRefused` says why not."""
        ...

    # -- the knowledge base --------------------------------------------------------------

    async def knowledge_ready(self) -> None:
        """Wait until the knowledge base can answer (the first run builds it); raises why if it cannot."""
        ...

    async def kb_search(self, text: str, limit: int = 20) -> SearchResults:
        """ICD-10-CM codes whose descriptions hold the most of the text's words, best first."""
        ...

    async def kb_code(self, code: str) -> CodeEntry | None:
        """One ICD-10-CM code, or None if there is no such code."""
        ...

    async def kb_children(self, code: str) -> tuple[CodeEntry, ...]:
        """The codes one level below `code`."""
        ...

    # -- live limits and intake ----------------------------------------------------------

    def set_limit(self, key: str, value: str | int | float, by: str = "console") -> Settings:
        """Change one limit while running; `ConfigError` (or `RestartNeeded`) says why not. The new settings."""
        ...

    def unpin(self, key: str, by: str = "console") -> bool:
        """Hand a knob the operator set back to the auto-tuner; False if it was not pinned."""
        ...

    def pause_intake(self) -> None:
        """Hold new work in the queues; what is in flight finishes."""
        ...

    def resume_intake(self) -> None:
        """Release the work held by `pause_intake`."""
        ...

    # -- requests held by the scheduler -------------------------------------------------

    def cancel_request(self, request_id: str, by: str = "console") -> str:
        """Cancel a Groq request the core holds, queued or in flight: its caller gets `RequestCancelled` naming
        `by`, its place and reservation are freed, and the ledger records who. What was done, in words;
        `UnknownRequest` if it is not held (attached: sent to the member holding it, answers to follow)."""
        ...

    def set_request_priority(self, request_id: str, priority: str, by: str = "console") -> str:
        """Move a held request to `priority` (critical, high, normal), within its key's or agent's bound;
        recorded with who. What was done, in words; `UnknownRequest` or `PriorityNotAllowed` say why not."""
        ...

    # -- alerts ----------------------------------------------------------------------------------------

    def acknowledge_alert(self, name: str) -> bool:
        """Mark an open alert as seen (still listed, no longer news); False if it is not open."""
        ...

    def silence_alert(self, name: str, seconds: float) -> float:
        """Announce nothing about alert `name` for `seconds` (0 lifts it); returns the wall time it ends."""
        ...

    def excuse_loop_lag(self, seconds: float) -> None:
        """The embedding app's own work holds the shared loop up to `seconds`: not the core stalling."""
        ...

    # -- history across runs -------------------------------------------------------------

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        """A page of finished Groq requests across runs, newest first (figures only, never prompt text)."""
        ...

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        """A page of alert announcements across runs, newest first."""
        ...

    async def limit_change_history(self, limit: int = 50, key: str | None = None) -> LimitChangeHistory:
        """The latest limit changes across runs (only `key`'s if given), newest first."""
        ...

    async def metric_history(self, span: float, max_points: int = 400,
                             end_wall: float | None = None) -> MetricHistory:
        """CPU % and memory % over the `span` seconds up to `end_wall` (default: now), from the ledger."""
        ...
