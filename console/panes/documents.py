"""Document pipeline pane: queued, running and recent jobs (names and counts, never text)."""

from __future__ import annotations

from typing import Any

from medops.console import figures
from medops.console.panes.pane import SnapshotPane
from medops.core.snapshot import CoreSnapshot

MAX_JOBS = 5


class DocumentsPane(SnapshotPane):
    """The documents section of the snapshot."""

    def __init__(self, *, id: str | None = "documents") -> None:
        super().__init__("Document pipeline", id=id)

    def section(self, snapshot: CoreSnapshot) -> Any:
        return snapshot.documents

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
        return "\n".join(lines)
