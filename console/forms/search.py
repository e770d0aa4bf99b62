"""Knowledge-base search form: free text in, ICD-10-CM codes out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label

from medops.console.error_text import describe_error
from medops.console.forms.capture import CapturingInput
from medops.console.forms.core_handle import STARTING, CoreHandle, needs_core

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.knowledge.entries import SearchHit, SearchResults

RESULT_LIMIT = 20
NO_CORE = needs_core("knowledge searches", "Run `medops kb search WORDS`, or medops without --attach.")


class SearchAnswered(Message):
    def __init__(self, query: str, rows: list[SearchHit], total: int) -> None:
        super().__init__()
        self.query = query
        self.rows = rows
        self.total = total  # every match, beyond the rows shown too


class SearchFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class SearchForm(Vertical):
    """One query at a time; a newer query replaces one still running."""

    def __init__(self, core: CoreHandle, *, id: str | None = "search-form") -> None:
        super().__init__(id=id)
        self.core = core

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield CapturingInput(placeholder="search codes and descriptions (enter searches)", id="search-text")
            yield Button("Search", id="search-go", variant="primary")
        yield Label("", id="search-error", classes="form-error")
        table: DataTable[str] = DataTable(id="search-results", cursor_type="row", zebra_stripes=True)
        table.add_columns("code", "billable", "description")
        yield table

    def on_mount(self) -> None:
        if self.core.attached():
            self.query_one("#search-error", Label).update(NO_CORE)

    @on(Input.Submitted, "#search-text")
    @on(Button.Pressed, "#search-go")
    def submit(self) -> None:
        error = self.query_one("#search-error", Label)
        text = self.query_one("#search-text", Input).value.strip()
        if self.core.attached():  # the words stay in the box
            error.update(NO_CORE)
            return
        if len(text) < 2:
            # the rows listed are never an answer to words no longer in the box: a search still running
            # would put them back, so it is cancelled too
            self.workers.cancel_group(self, "search")
            self.query_one("#search-results", DataTable).clear()
            error.update("Type at least two characters to search.")
            return
        core = self.core.ready()
        if core is None:
            error.update(STARTING)
            return
        error.update("searching…")
        self._search(core, text)

    @work(exclusive=True, exit_on_error=False, group="search")
    async def _search(self, core: CoreCommands, text: str) -> None:
        try:
            results: SearchResults = await core.kb_search(text, limit=RESULT_LIMIT)
        except Exception as exc:  # shown on the form
            self.post_message(SearchFailed(describe_error(exc)))
        else:
            self.post_message(SearchAnswered(text, list(results.hits), results.total))

    @on(SearchAnswered)
    def show_rows(self, message: SearchAnswered) -> None:
        table = self.query_one("#search-results", DataTable)
        table.clear()
        for row in message.rows:
            table.add_row(*row_cells(row))
        found = len(message.rows)
        self.query_one("#search-error", Label).update(
            f"{found} of {message.total:,} matching codes" if found else f"no codes match {message.query!r}")

    @on(SearchFailed)
    def show_failure(self, message: SearchFailed) -> None:
        self.query_one("#search-error", Label).update(message.reason)


def row_cells(hit: SearchHit) -> tuple[str, str, str]:
    """Code, billable or header, description."""
    return hit.code, "yes" if hit.billable else "header", hit.description
