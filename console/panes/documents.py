"""Document pipeline pane: queued, running and recent jobs (names and counts, never text), and the names this
console refused before they became jobs, with why."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any

from medops.console import figures
from medops.console.panes.pane import SnapshotPane
from medops.console.times import clock_time
from medops.core.snapshot import CoreSnapshot

MAX_JOBS = 5
MAX_REFUSED = 5


@dataclass(frozen=True)
class Refusal:
    """A name given on the Document form that never became a job, and why."""

    at: float
    typed: str
    reason: str


class DocumentsPane(SnapshotPane):
    """The documents section of the snapshot, and the form's refusals, newest first."""

    def __init__(self, *, id: str | None = "documents") -> None:
        super().__init__("Document pipeline", id=id)
        self.refusals: collections.deque[Refusal] = collections.deque(maxlen=MAX_REFUSED)

    def refused(self, typed: str, reason: str) -> None:
        """List `typed` as refused, with `reason`."""
        self.refusals.appendleft(Refusal(time.time(), typed, reason))
        if self._latest is None:
            self.update(self._refusal_lines())
        else:
            self._draw_latest()

    def section(self, snapshot: CoreSnapshot) -> Any:
        return snapshot.documents, tuple(self.refusals)

    def _refusal_lines(self) -> str:
        lines = []
        for refusal in self.refusals:
            name = refusal.typed.strip() or "(no name)"
            reason = refusal.reason.removeprefix(f"{name}: ")  # the intake check names the file itself
            lines.append(f" {clock_time(refusal.at)} refused {figures.text(name)}: [$error]{figures.text(reason)}[/]")
        return "\n".join(lines)

    def draw(self, snapshot: CoreSnapshot) -> str:
        docs = snapshot.documents
        lines = [f"queued {docs.queued} running {docs.running} done {docs.done} failed {docs.failed}"
                 f" pages {figures.count(docs.pages)}"]
        for job in docs.recent[:MAX_JOBS]:
            pages = f"{job.pages_done}/{job.pages_total}" if job.pages_total else "-"
            # A member's own jobs say why in words; a fleet member's published ones carry only the code.
            why = job.error or job.error_code
            error = f" [$error]{figures.text(why)}[/]" if why else ""
            lines.append(f" {figures.text(job.job_id)} {figures.text(job.name)} {figures.text(job.state)}"
                         f" {pages}{error}")
        if self.refusals:
            lines.append(self._refusal_lines())
        return "\n".join(lines)
