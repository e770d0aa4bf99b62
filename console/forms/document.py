"""Document form: a path inside the intake folders and an optional case id; page
progress while it runs, then the text and any errors.

The path box holds one name, but names come in several at once: typed ahead, each with its
Enter (each Enter takes up the name before it), or pasted as a list. A paste never acts by
itself, so a pasted list lands in the box, its lines apart by ␊, with a note saying so;
Enter then takes up each line as its own document, in order, as if each had been typed
with its Enter. Nothing of a line is lost or joined to the next."""

from __future__ import annotations

import collections
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, TextArea

from medops.console.error_text import describe_error
from medops.console.forms.capture import CapturingInput
from medops.console.forms.core_handle import STARTING, CoreHandle, needs_core, read_only_refusal
from medops.console.forms.intake import IntakePaths, IntakeSuggester
from medops.console.forms.pasted import LINE_PICTURE, PastedLines
from medops.core.documents.intake import IntakeRefused

if TYPE_CHECKING:
    from medops.core.documents.results import DocumentProgress, DocumentResult

CASE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NO_CORE = needs_core("documents", "Run medops without --attach, or use `medops extract FILE`; the path stays "
                                  "in the box.")


class PageProgress(Message):
    """The document worker finished `done` of `total` pages of job `job_id`."""

    def __init__(self, done: int, total: int, job_id: str = "") -> None:
        super().__init__()
        self.done = done
        self.total = total
        self.job_id = job_id


class ExtractionStarted(Message):
    """The path passed the intake check; extraction of `name` begins."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class DocumentDone(Message):
    """The core returned a `DocumentResult`."""

    def __init__(self, result: DocumentResult) -> None:
        super().__init__()
        self.result = result


class DocumentFailed(Message):
    """The path was refused or the extraction failed; `typed` is the path as given."""

    def __init__(self, reason: str, typed: str = "") -> None:
        super().__init__()
        self.reason = reason
        self.typed = typed


class DocumentRefused(Message):
    """`typed` never became a job of the core (refused by the intake check, a bad case id…): the documents pane
    lists it with `reason`, since the core's own list never will."""

    def __init__(self, typed: str, reason: str) -> None:
        super().__init__()
        self.typed = typed
        self.reason = reason


class CandidatesFound(Message):
    def __init__(self, paths: list[str]) -> None:
        super().__init__()
        self.paths = paths


class DocumentForm(Vertical):
    """Extract one document at a time, the others waiting in order; the list completes the path; ctrl+g cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "cancel_document", "Cancel doc", key_display="^g"),  # ^g: cancel, as in emacs
    ]

    def __init__(self, core: CoreHandle, intake: IntakePaths, *, id: str | None = "document-form") -> None:
        super().__init__(id=id)
        self.core = core
        self.intake = intake  # the core's own once it has started: one set of path rules for CLI and console
        self.suggester = IntakeSuggester(intake)
        self.running = False
        self.job_id: str | None = None  # the running job's id, from its first progress event
        self.waiting: collections.deque[tuple[str, str | None]] = collections.deque()  # (path, case id), in order
        self.started: list[str] = []  # every path taken up, in order (tests read it)

    def compose(self) -> ComposeResult:
        yield Label(folders_text(self.intake.folders), id="doc-folders")
        with Horizontal(classes="form-row"):
            yield CapturingInput(placeholder="path of a PDF or image in an intake folder", id="doc-path",
                                 suggester=self.suggester, clear_on_submit=True, one_per_line=True)
            yield CapturingInput(placeholder="case id (optional)", id="doc-case")
            yield Button("Extract", id="doc-extract", variant="primary")
            yield Button("Cancel", id="doc-cancel", variant="warning", disabled=True)
        # What happened comes right under the form, before the list: however long the list, a
        # result or a refusal is on the first screen (at 80x24 it used to fall below the fold).
        yield ProgressBar(total=1, id="doc-progress", show_eta=False)  # determinate when idle: no animation
        yield Label("", id="doc-summary")
        yield Label("", id="doc-error", classes="form-error")
        yield OptionList(id="doc-candidates")
        yield TextArea("", id="doc-text", read_only=True, soft_wrap=True)

    def on_mount(self) -> None:
        if self.core.attached():
            self.query_one("#doc-folders", Label).update("intake: none here (attached to the fleet, no core)")
            self.query_one("#doc-error", Label).update(NO_CORE)
        self._find_candidates("")

    def set_intake(self, intake: IntakePaths) -> None:
        """The core's own intake, once it has started."""
        self.intake = self.suggester.intake = intake
        if not self.core.attached():
            self.query_one("#doc-folders", Label).update(folders_text(intake.folders))
        self._find_candidates(self.query_one("#doc-path", Input).value)

    @on(Input.Changed, "#doc-path")
    def path_changed(self, event: Input.Changed) -> None:
        self._find_candidates(event.value)

    @work(exclusive=True, exit_on_error=False, group="intake-list")
    async def _find_candidates(self, typed: str) -> None:
        self.post_message(CandidatesFound(await self.intake.complete_async(typed)))

    @on(CandidatesFound)
    def show_candidates(self, message: CandidatesFound) -> None:
        options = self.query_one("#doc-candidates", OptionList)
        options.clear_options()
        options.add_options(message.paths)

    @on(OptionList.OptionSelected, "#doc-candidates")
    def choose_candidate(self, event: OptionList.OptionSelected) -> None:
        """A file fills the path; a folder (ending in '/') fills it and lists what is inside."""
        path_input = self.query_one("#doc-path", Input)
        path_input.value = str(event.option.prompt)
        path_input.cursor_position = len(path_input.value)
        path_input.focus()

    @on(Input.Submitted, "#doc-path")
    def path_submitted(self, event: Input.Submitted) -> None:
        """Enter in the path: the path it held at that keypress (the box is already empty for the next)."""
        self.submit_each(event.value)

    @on(Input.Submitted, "#doc-case")
    @on(Button.Pressed, "#doc-extract")
    def extract_pressed(self) -> None:
        path_input = self.query_one("#doc-path", Input)
        typed = path_input.value
        path_input.value = ""
        self.submit_each(typed)

    @on(PastedLines)
    def lines_pasted(self, message: PastedLines) -> None:
        message.stop()
        self.notify(f"{message.count} lines pasted into the path, apart by {LINE_PICTURE}: enter takes up each as "
                    "its own document, in order.", title="paste", timeout=10)

    def submit_each(self, typed: str) -> None:
        """Take up each line of `typed` (a pasted list: lines apart by ␊) as its own document, in order."""
        lines = [line for line in typed.split(LINE_PICTURE) if line.strip()] if LINE_PICTURE in typed else [typed]
        for line in lines:
            self.submit(line)

    def submit(self, typed: str) -> None:
        """Check the case id, then extract `typed` now, or after the documents already waiting."""
        # A refused name is listed, never put back in the box: what was typed since would be joined to it.
        if self.core.attached():
            self._refuse(typed, NO_CORE)
            return
        if self.core.read_only:
            self._refuse(typed, read_only_refusal("extracting a document"))
            return
        case_id = self.query_one("#doc-case", Input).value.strip() or None
        if case_id is not None and not CASE_ID.match(case_id):
            self._refuse(typed, "The case id may hold letters, digits, '.', '_' and '-' (at most 64);"
                                " fix it or leave it empty.")
            return
        self.waiting.append((typed, case_id))
        if self.running:
            self.query_one("#doc-summary", Label).update(self._waiting_text())
            return
        self._next()

    def _next(self, keep_error: bool = False) -> None:
        """Start the next waiting document, clearing what the last one left (its refusal stays if `keep_error`)."""
        if not self.waiting:
            return
        typed, case_id = self.waiting.popleft()
        self.started.append(typed)
        if not keep_error:
            self.query_one("#doc-error", Label).update("")
        self.query_one("#doc-text", TextArea).text = ""
        self.query_one("#doc-progress", ProgressBar).update(total=1, progress=0)
        self.query_one("#doc-summary", Label).update(f"checking {typed.strip() or 'the path'}…{self._waiting_text()}")
        self._set_running(True)
        self._extract(typed, case_id)

    def _waiting_text(self) -> str:
        return f" ({len(self.waiting)} more waiting)" if self.waiting else ""

    def _refuse(self, typed: str, reason: str) -> None:
        """Say why `typed` was refused, on the form and in the documents pane."""
        self.query_one("#doc-error", Label).update(reason)
        self.post_message(DocumentRefused(typed, reason))

    @work(exclusive=True, exit_on_error=False, group="document")
    async def _extract(self, typed: str, case_id: str | None) -> None:
        try:  # the same check the core makes, first, so a bad path is named before anything starts
            path = await self.intake.check_async(typed, relative_to_intake=True)
        except IntakeRefused as exc:
            self.post_message(DocumentFailed(str(exc), typed))
            return
        core = self.core.ready()
        if core is None:
            self.post_message(DocumentFailed(STARTING, typed))
            return
        self.post_message(ExtractionStarted(path.name))

        def on_progress(progress: DocumentProgress) -> None:
            # post_message is safe from any thread the pipeline calls back on
            self.post_message(PageProgress(progress.pages_done, progress.pages_total, progress.job_id))

        try:
            result = await core.extract(path, case_id=case_id, on_progress=on_progress)
        except Exception as exc:  # shown on the form; the console keeps running
            self.post_message(DocumentFailed(describe_error(exc), typed))
        else:
            self.post_message(DocumentDone(result))

    @on(ExtractionStarted)
    def show_start(self, message: ExtractionStarted) -> None:
        self.query_one("#doc-summary", Label).update(f"extracting {message.name}…{self._waiting_text()}")
        self.query_one("#doc-progress", ProgressBar).update(total=None, progress=0)

    @on(PageProgress)
    def show_progress(self, message: PageProgress) -> None:
        if self.running and message.job_id:
            self.job_id = message.job_id
        self.query_one("#doc-progress", ProgressBar).update(total=max(1, message.total), progress=message.done)

    @on(DocumentDone)
    def show_result(self, message: DocumentDone) -> None:
        self._set_running(False)
        result: DocumentResult = message.result
        pages = max(1, result.pages)
        self.query_one("#doc-progress", ProgressBar).update(total=pages, progress=pages)
        self.query_one("#doc-text", TextArea).text = result.text
        self.query_one("#doc-summary", Label).update(result_summary(result) + self._waiting_text())
        self.query_one("#doc-error", Label).update("\n".join(result.warnings))
        self._next()

    @on(DocumentFailed)
    def show_failure(self, message: DocumentFailed) -> None:
        """Nothing of the last document stays on the form beside the refusal: no bar at 100%, no old text."""
        self.query_one("#doc-progress", ProgressBar).update(total=1, progress=0)
        self.query_one("#doc-text", TextArea).text = ""
        self.query_one("#doc-summary", Label).update(self._waiting_text().strip(" ()"))
        if self.job_id is None:  # the core never queued it: only the pane's refusals will list it
            self._refuse(message.typed, message.reason)
        else:
            self.query_one("#doc-error", Label).update(message.reason)
        self._set_running(False)
        self._next(keep_error=True)

    @on(Button.Pressed, "#doc-cancel")
    def action_cancel_document(self) -> None:
        """Cancel the running document job (ctrl+g or the Cancel button)."""
        error = self.query_one("#doc-error", Label)
        if not self.running:
            error.update("No document is being extracted; nothing to cancel.")
            return
        if self.job_id is None:
            error.update("The job has no id yet (the core has not queued it); press ctrl+g again in a moment.")
            return
        core = self.core.ready()
        if core is None:
            error.update(STARTING)
            return
        if core.cancel_document(self.job_id):
            self.query_one("#doc-summary", Label).update(f"cancelling {self.job_id}…")
        else:
            error.update(f"{self.job_id} had already finished; nothing was cancelled.")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """ctrl+g shows in the footer only while a document is being extracted."""
        if action == "cancel_document":
            return self.running
        return True

    def _set_running(self, running: bool) -> None:
        self.running = running
        if not running:
            self.job_id = None
        self.query_one("#doc-cancel", Button).disabled = not running
        self.refresh_bindings()


def folders_text(folders: Sequence[Path]) -> str:
    return "intake: " + (", ".join(str(f) for f in folders) or "none configured")


def result_summary(result: DocumentResult) -> str:
    """Job, pages, how they were read, size of the text and time taken."""
    duplicate = f", same file as {result.duplicate_of}" if result.duplicate_of else ""
    repaired = ", repaired" if result.repaired else ""
    return (f"{result.job_id} {result.name}: {result.pages} page{'s' if result.pages != 1 else ''} ({result.method})"
            f", {result.characters:,} characters in {result.seconds:.1f}s{repaired}{duplicate}")


