"""The Limits form's history: the latest limit changes across runs, newest first, in local time.

The core reads them from the ledger on the ledger's own thread; a worker awaits that
and posts the result, so the UI loop never waits on DuckDB. Until the first answer the
view shows this run's changes from the latest snapshot. Days are headings and only the
change column wraps, at spaces and inside a long model name after a "/" or "-", so each line
(time, key, old → new, who) fits 80 columns.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Label, Static

from medops.console import figures, times
from medops.console.error_text import describe_error
from medops.console.forms.core_handle import CoreHandle
from medops.core.inert_text import visible

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.ledger.limit_history import LimitChangeHistory
    from medops.core.snapshot import LimitChange

MIN_CHANGE_WIDTH = 8  # columns the change keeps however narrow the view
BY_WIDTH = 28  # "by " and an operator@host name; a longer one is cut
# A long word's pieces: each up to and including a "/" or "-" (a model name breaks there, never mid-word).
WORD_PIECES = re.compile(r"[^/-]*[/-]+|[^/-]+")
HISTORY_SHOWN = 200  # changes fetched for the view; older ones are a `medops limits history --limit N` away


class HistoryFetched(Message):
    """The core's answer: the latest changes across runs (or this run's, saying why)."""

    def __init__(self, history: LimitChangeHistory) -> None:
        super().__init__()
        self.history = history


class HistoryFailed(Message):
    """The history could not be read; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class LimitHistoryView(Vertical):
    """A heading and a scrollable list of limit changes; `reload()` asks the core again."""

    def __init__(self, core: CoreHandle, this_run: tuple[LimitChange, ...], *,
                 id: str | None = "limit-history") -> None:
        super().__init__(id=id)
        self.core = core
        self.this_run = this_run
        self.fetches = 0  # answers shown (tests wait on it)
        self.shown: LimitChangeHistory | None = None  # the core's latest answer

    def compose(self) -> ComposeResult:
        yield Label("", id="limit-history-title")
        with VerticalScroll(id="limit-history-scroll"):
            yield Static("", id="limit-history-note")
            yield Static("", id="limit-history-lines")

    def on_mount(self) -> None:
        self.show("[b]History[/] [dim]· reading the ledger…[/]", "", self.this_run or None)
        self.reload()

    def reload(self) -> None:
        """Fetch the history again (a fetch still running is cancelled: the newer one answers)."""
        core = self.core.ready()
        if core is None:
            self.show("[b]History[/], [$warning]this run only[/] [dim]· the core is still starting[/]", "",
                      self.this_run)
            return
        self._fetch(core)

    @work(exclusive=True, exit_on_error=False, group="limit-history")
    async def _fetch(self, core: CoreCommands) -> None:
        try:
            history = await core.limit_change_history(limit=HISTORY_SHOWN)
        except Exception as exc:  # shown in the view; the form stays usable
            self.post_message(HistoryFailed(describe_error(exc)))
        else:
            self.post_message(HistoryFetched(history))

    @on(HistoryFetched)
    def _show_history(self, message: HistoryFetched) -> None:
        message.stop()
        self.fetches += 1
        history = self.shown = message.history
        if history.earlier_runs:
            title = "[b]History[/], all runs [dim]· newest first · pgup/pgdn scroll[/]"
        else:
            title = "[b]History[/], [$warning]this run only[/] [dim]· newest first · pgup/pgdn scroll[/]"
        self.show(title, history.note, history.changes)

    @on(HistoryFailed)
    def _show_failure(self, message: HistoryFailed) -> None:
        message.stop()
        self.fetches += 1
        self.show("[b]History[/] [$error]could not be read[/]", message.reason, None)

    def show(self, title: str, note: str, changes: tuple[LimitChange, ...] | None) -> None:
        """Put a title (markup), a note (plain text, shown as a warning) and the changes (None: none known)."""
        self.query_one("#limit-history-title", Label).update(title)
        note_widget = self.query_one("#limit-history-note", Static)
        note_widget.update(figures.text(note))
        note_widget.display = bool(note)
        lines = self.query_one("#limit-history-lines", Static)
        lines.update(history_table(changes or ()))
        lines.display = changes is not None

    def scroll_history(self, pages: int) -> None:
        """Scroll the list by whole pages (negative: back towards the newest)."""
        scroll = self.query_one("#limit-history-scroll", VerticalScroll)
        for _ in range(abs(pages)):
            if pages > 0:
                scroll.scroll_page_down(animate=False)
            else:
                scroll.scroll_page_up(animate=False)


def history_table(changes: tuple[LimitChange, ...]) -> RenderableType:
    """Newest first: a heading for each local day, then `time  key  old → new  by who` in aligned columns."""
    if not changes:
        return Text("no limit changed yet", style="dim")
    return HistoryTable(changes)


class HistoryTable:
    """Limit changes grouped by local day, in columns that line up across days at any width.

    Only the change column wraps, inside its own column, so a long value never breaks the alignment;
    its width is set from the width on offer, which only the render knows.
    """

    GAP = 2  # spaces between columns

    def __init__(self, changes: tuple[LimitChange, ...]) -> None:
        self.changes = changes
        self.key_width = max(len(c.key) for c in changes)
        self.change_width = max(len(transition(c)) for c in changes)
        # Who changed it comes from the store: a long name (a trial wrote one by hand) squeezed the time to
        # "19:…" even at 160 columns. Cut to BY_WIDTH; the whole name is in `medops limits history`.
        self.by_width = min(max(len(c.by) for c in changes) + len("by "), BY_WIDTH)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        time_width = len(" HH:MM:SS")  # indented under the day's heading
        fixed = time_width + self.key_width + self.by_width + 3 * self.GAP
        change_width = min(self.change_width, max(MIN_CHANGE_WIDTH, options.max_width - fixed))
        for _, same_day in itertools.groupby(self.changes, key=lambda c: times.local_time(c.at).date()):
            day = list(same_day)
            first = times.local_time(day[0].at)
            yield Text.assemble((f"{first:%a %Y-%m-%d}", "bold"), " ", (f"{first:%Z}", "dim"))
            grid = Table.grid(padding=(0, self.GAP))
            grid.add_column(width=time_width, no_wrap=True, style="dim")
            grid.add_column(width=self.key_width, no_wrap=True, overflow="ellipsis")
            grid.add_column(width=change_width, no_wrap=True)  # wrapped here: `wrapped`
            grid.add_column(width=self.by_width, no_wrap=True, overflow="ellipsis", style="dim")
            for change in day:
                # Text, not str: rich reads a str as markup, and the operator's name came from the store.
                grid.add_row(f" {times.clock_time(change.at)}", Text(visible(change.key)),
                             Text(wrapped(visible(transition(change)), change_width)),
                             Text(f"by {visible(change.by)}"))
            yield grid


def wrapped(value: str, width: int) -> str:
    """`value` in lines of at most `width`, broken at spaces; a word longer than a line (a model name) also after
    a "/" or "-", never mid-word; a piece with no such break longer than a line is cut at `width`. All of it shows."""
    lines: list[str] = []
    line = ""
    for word in value.split(" "):
        pieces = [word] if len(word) <= width else WORD_PIECES.findall(word)
        for n, piece in enumerate(pieces):
            gap = " " if line and n == 0 else ""
            if line and len(line) + len(gap) + len(piece) > width:
                lines.append(line)
                line, gap = "", ""
            line += gap + piece
            while len(line) > width:
                lines.append(line[:width])
                line = line[width:]
    lines.append(line)
    return "\n".join(lines)


def transition(change: LimitChange) -> str:
    """`old → new`, as `medops config show` prints the values."""
    return f"{change.old} → {change.new}"
