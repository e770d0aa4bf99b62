"""Document pipeline pane: queued, running and recent jobs (names and counts, never text), and the names this
console refused before they became jobs, with why: one list, newest first, so what was just done is on the
first line under the counts (at 80x24 the pane shows no more; refusals listed after every job were never seen).

A job carries no time: it is placed at the moment this console's form started it (`started`), or else when the
pane first saw it (a job from the CLI or a gateway)."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any

from medops.console import figures
from medops.console.panes.pane import SnapshotPane
from medops.console.times import clock_time
from medops.core.snapshot import CoreSnapshot, DocumentJob

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
        self._starts: collections.deque[tuple[str, float]] = collections.deque(maxlen=MAX_JOBS)  # (name, when)
        self._job_times: dict[str, float] = {}  # job id → when it started, for the jobs listed

    def started(self, name: str) -> None:
        """The form started extracting `name` now: its job, once the snapshot lists it, is placed at this moment."""
        self._starts.append((name, time.time()))

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
        return "\n".join(refusal_line(refusal) for refusal in self.refusals)

    def _job_time(self, job: DocumentJob, now: float) -> float:
        if job.job_id not in self._job_times:
            start = next((item for item in self._starts if item[0] == job.name), None)
            if start is not None:
                self._starts.remove(start)
            self._job_times[job.job_id] = start[1] if start is not None else now
        return self._job_times[job.job_id]

    def draw(self, snapshot: CoreSnapshot) -> str:
        docs = snapshot.documents
        lines = [f"queued {docs.queued} running {docs.running} done {docs.done} failed {docs.failed}"
                 f" pages {figures.count(docs.pages)}"]
        now = time.time()
        jobs = docs.recent[:MAX_JOBS]
        entries = [(self._job_time(job, now), job_line(job)) for job in jobs]
        self._job_times = {job.job_id: self._job_times[job.job_id] for job in jobs}  # only the listed ones
        entries += [(refusal.at, refusal_line(refusal)) for refusal in self.refusals]
        # newest first; a stable sort keeps the snapshot's own order (newest first) among jobs seen at once
        lines += [line for _, line in sorted(entries, key=lambda entry: -entry[0])]
        return "\n".join(lines)


def job_line(job: DocumentJob) -> str:
    pages = f"{job.pages_done}/{job.pages_total}" if job.pages_total else "-"
    # A member's own jobs say why in words; a fleet member's published ones carry only the code.
    why = job.error or job.error_code
    error = f" [$error]{figures.text(why)}[/]" if why else ""
    return f" {figures.text(job.job_id)} {figures.text(job.name)} {figures.text(job.state)} {pages}{error}"


def refusal_line(refusal: Refusal) -> str:
    name = refusal.typed.strip() or "(no name)"
    reason = refusal.reason.removeprefix(f"{name}: ")  # the intake check names the file itself
    return f" {clock_time(refusal.at)} refused {figures.text(name)}: [$error]{figures.text(reason)}[/]"
