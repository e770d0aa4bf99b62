"""What extracting a document reports: its progress while it runs, and the result (text and how it was read)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from medops.core.documents.extraction import METHOD_BLANK, METHOD_NONE, METHOD_OCR, METHOD_TEXT
from medops.core.snapshot import JobState


@dataclass(frozen=True)
class DocumentProgress:
    """A job's progress, sent to `on_progress` when it is queued, starts, finishes a page or ends."""

    job_id: str
    name: str
    state: JobState
    pages_done: int = 0
    pages_total: int = 0
    method: str = ""  # how the last page was read


@dataclass(frozen=True)
class DocumentResult:
    """A document's text and how it was obtained. `repr` leaves the text out."""

    job_id: str
    name: str
    sha256: str
    kind: str
    size: int
    text: str = field(repr=False)
    pages: int
    page_methods: tuple[str, ...]  # per page: text, ocr, blank or none
    warnings: tuple[str, ...]
    repaired: bool
    queued_seconds: float
    extract_seconds: float
    seconds: float  # from `extract()` to the result, intake included
    duplicate_of: str | None = None

    @property
    def characters(self) -> int:
        return len(self.text)

    @property
    def method(self) -> str:
        """One word for the whole document: text, ocr, mixed, blank or none."""
        used = {m for m in self.page_methods if m != METHOD_BLANK}
        if not used:
            return METHOD_BLANK if self.page_methods else METHOD_NONE
        if used == {METHOD_TEXT}:
            return METHOD_TEXT
        if used == {METHOD_OCR}:
            return METHOD_OCR
        if used == {METHOD_NONE}:
            return METHOD_NONE
        return "mixed"


ProgressCallback = Callable[[DocumentProgress], None]
