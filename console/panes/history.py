"""The History tab: Groq requests and alerts across runs, newest first, in local time, paged back on demand.

The core reads the ledger on the ledger's own thread; workers await that and post
the page, so the UI loop never waits on DuckDB. The tab reads when it is shown, on r,
and when a snapshot shows requests finished or alerts announced while it is on
screen and following the newest rows; a hidden tab only notes that. Rows hold
figures and ids only: prompt text is not in the ledger, so it cannot reach here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, Static

from medops.console import figures
from medops.console.error_text import describe_error
from medops.console.forms.availability import CoreHandle
from medops.console.forms.prompt import AGENTS

if TYPE_CHECKING:
    from medops.core.groq.requests import RequestRecord
    from medops.core.ledger.history import AlertHistory, RequestHistory
    from medops.core.snapshot import Alert, CoreSnapshot

PAGE = 100  # rows one page reads; o appends the next older page
REQUESTS, ALERTS = "requests", "alerts"
REQUEST_COLUMNS = ("time", "agent", "prio", "outcome", "try", "tokens", "latency", "wait", "model", "request id")
ALERT_COLUMNS = ("time", "event", "level", "alert", "message")
PRIORITY_SHORT = {"critical": "crit", "normal": "norm"}


class PageFetched(Message):
    """A page of one table's history, for the fetch numbered `fetch`."""

    def __init__(self, table: str, fetch: int, history: RequestHistory | AlertHistory, append: bool) -> None:
        super().__init__()
        self.table = table
        self.fetch = fetch
        self.history = history
        self.append = append


class PageFailed(Message):
    """A table's history could not be read; `reason` is safe to show."""

    def __init__(self, table: str, fetch: int, reason: str) -> None:
        super().__init__()
        self.table = table
        self.fetch = fetch
        self.reason = reason


class HistoryPane(Vertical):
    """Requests over alerts, each a scrollable table; o loads older rows into the focused one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Listed in the tab's own heading, not the footer: 80 columns have no room left for them.
        Binding("o", "older", "Older", show=False),
        Binding("m", "next_model", "Model", show=False),
        Binding("a", "next_agent", "Agent", show=False),
    ]

    def __init__(self, core: CoreHandle, models: tuple[str, ...], *, id: str | None = "history") -> None:
        super().__init__(id=id)
        self.core = core
        self.models = models
        self.model: str | None = None  # the requests shown: only this model's (None: all)
        self.agent: str | None = None
        self.requests: RequestHistory | None = None  # the latest page read
        self.alerts: AlertHistory | None = None
        self.pages = {REQUESTS: 0, ALERTS: 0}  # pages shown since the latest reload
        self.fetches = 0  # pages that arrived, or failures (tests wait on it)
        self._fetch = {REQUESTS: 0, ALERTS: 0}  # number of each table's latest fetch: older answers are dropped
        self._loading = {REQUESTS: False, ALERTS: False}
        self._activity: Any = None  # the snapshot figures that change when history does
        self._read_at: Any = None  # ... as they were at the latest reload
        self._now: float | None = None  # the latest snapshot's wall time, to show today's rows without a date
        self._agents_seen: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Label("", id="history-title")
        yield Static("", id="history-note")
        for table, columns in ((REQUESTS, REQUEST_COLUMNS), (ALERTS, ALERT_COLUMNS)):
            if table == ALERTS:
                yield Label("", id="history-alerts-title")
            data: DataTable[Text] = DataTable(id=f"history-{table}", cursor_type="row", zebra_stripes=True)
            for label in columns:
                data.add_column(label, width=len(label))  # widened by add_fitted as rows come
            yield data

    def on_mount(self) -> None:
        self.query_one("#history-note", Static).display = False
        self._titles()

    # ---- when to read ---------------------------------------------------------------

    def on_show(self) -> None:
        if self.app.focused is None or self not in self.app.focused.ancestors:
            self.query_one("#history-requests", DataTable).focus()  # so o, m and a work at once
        self.reload()

    def apply(self, snapshot: CoreSnapshot) -> None:
        """Note what a snapshot says; read again if history grew while this tab follows the newest rows."""
        scheduler = snapshot.scheduler
        self._now = snapshot.taken_at
        self._activity = (scheduler.completed + scheduler.failed + scheduler.rejected,
                          tuple((alert.name, alert.updated_at) for alert in snapshot.alerts))
        if not self.is_on_screen or self._activity == self._read_at:
            return
        if any(self._loading.values()):
            return  # one read at a time: the next snapshot after it lands still sees the activity unread
        if self.following:
            self.reload()
        else:
            self._titles()

    @property
    def following(self) -> bool:
        """On the first page of both tables with the requests cursor on the newest row: new rows may replace it."""
        table = self.query_one("#history-requests", DataTable)
        return self.pages[REQUESTS] <= 1 and self.pages[ALERTS] <= 1 and table.cursor_row <= 0

    def reload(self) -> None:
        """Read the newest page of both tables again (a page still being read is dropped)."""
        self._read_at = self._activity
        self._read(REQUESTS, None)
        self._read(ALERTS, None)

    def action_older(self) -> None:
        """Append the next older page to the focused table (the requests when neither has the focus)."""
        table = ALERTS if self.query_one("#history-alerts", DataTable).has_focus else REQUESTS
        shown = self.requests if table == REQUESTS else self.alerts
        if self._loading[table] or shown is None or shown.older is None:
            if shown is not None and shown.older is None:
                self.notify(f"No older {table}: the oldest the ledger keeps is shown.", title="history")
            return
        self._read(table, shown.older)

    def action_next_model(self) -> None:
        """Show only the next model's requests (after the last: all models)."""
        self.model = following_choice(self.model, sorted({*self.models, *self._models_seen()}))
        self._read(REQUESTS, None)

    def action_next_agent(self) -> None:
        """Show only the next agent's requests (after the last: all agents)."""
        self.agent = following_choice(self.agent, sorted({*AGENTS, *self._agents_seen}))
        self._read(REQUESTS, None)

    def _models_seen(self) -> set[str]:
        return {record.model for record in self.requests.requests} if self.requests is not None else set()

    # ---- reading --------------------------------------------------------------------

    def _read(self, table: str, before: Any) -> None:
        name = "request_history" if table == REQUESTS else "alert_history"
        command, _ = self.core.command(name, f"The {table} history", "history")
        self._fetch[table] += 1
        if command is None:
            why = "the core is still starting" if not self.core.started else "this core keeps no history"
            self.post_message(PageFailed(table, self._fetch[table], why))
            return
        self._loading[table] = True
        filters = {"model": self.model, "agent": self.agent} if table == REQUESTS else {}
        self._run(table, self._fetch[table], command, before, filters)

    @work(exit_on_error=False, group="history")
    async def _run(self, table: str, fetch: int, command: Any, before: Any, filters: dict[str, str | None]) -> None:
        try:
            history = await command(before=before, limit=PAGE, **filters)
        except Exception as exc:  # shown in the tab; the console stays usable
            self.post_message(PageFailed(table, fetch, describe_error(exc)))
        else:
            self.post_message(PageFetched(table, fetch, history, append=before is not None))

    @on(PageFetched)
    def _show_page(self, message: PageFetched) -> None:
        message.stop()
        if message.fetch != self._fetch[message.table]:
            return  # a newer read of this table is on its way
        self._loading[message.table] = False
        self.fetches += 1
        self.pages[message.table] = self.pages[message.table] + 1 if message.append else 1
        table = self.query_one(f"#history-{message.table}", DataTable)
        if not message.append:
            table.clear()
        if message.table == REQUESTS:
            requests = self.requests = cast("RequestHistory", message.history)
            self._agents_seen.update(record.agent for record in requests.requests)
            add_fitted(table, [request_cells(record, self._now) for record in requests.requests])
        else:
            alerts = self.alerts = cast("AlertHistory", message.history)
            add_fitted(table, [alert_cells(alert, self._now) for alert in alerts.alerts])
        self._titles()
        self._catch_up()

    def _catch_up(self) -> None:
        """Activity seen while a read was out (see `apply`) is read now, once, if the tab follows the newest."""
        if not any(self._loading.values()) and self._activity != self._read_at and self.is_on_screen \
                and self.following:
            self.reload()

    @on(PageFailed)
    def _show_failure(self, message: PageFailed) -> None:
        message.stop()
        if message.fetch != self._fetch[message.table]:
            return
        self._loading[message.table] = False
        self.fetches += 1
        self._titles(failure=(message.table, message.reason))

    # ---- headings -------------------------------------------------------------------

    def _titles(self, failure: tuple[str, str] | None = None) -> None:
        """Each table's heading (what is shown, this run only or not, the keys), and the note saying why."""
        filters = f"{self.model or 'all models'} · {self.agent or 'all agents'}"
        stale = "  [$warning]newer rows: r[/]" if self._read_at != self._activity and not self.following else ""
        requests = shown(self.query_one("#history-requests", DataTable).row_count, self.requests)
        alerts = shown(self.query_one("#history-alerts", DataTable).row_count, self.alerts)
        self.query_one("#history-title", Label).update(
            f"[b]Requests[/] {scope(self.requests)}[dim]· {figures.text(filters)}[/]{stale}\n"
            f"[dim]{requests}, newest first · {local_zone(self._now)} · o older · m model · a agent · r newest[/]")
        self.query_one("#history-alerts-title", Label).update(
            f"[b]Alerts[/] {scope(self.alerts)}[dim]· {alerts}, newest first · tab here, then o older[/]")
        notes = [history.note for history in (self.requests, self.alerts) if history is not None and history.note]
        if failure is not None:
            notes.insert(0, f"The {failure[0]} history could not be read: {failure[1]}")
        note = self.query_one("#history-note", Static)
        note.update(figures.text(notes[0]) if notes else "")
        note.display = bool(notes)


def add_fitted(table: DataTable[Any], rows: list[tuple[Text, ...]]) -> None:
    """Widen the columns to fit `rows`, then add them, so every line is drawn at its final width.

    DataTable's own fitting measures new rows only when idle and keeps lines drawn before that
    (Textual 8.2): a page arriving between two frames kept its columns cut to the headers' width.
    """
    for column, cells in zip(table.ordered_columns, zip(*rows, strict=True), strict=False):
        column.width = max(column.width, *(cell.cell_len for cell in cells))
    table.add_rows(rows)


def following_choice(current: str | None, choices: list[str]) -> str | None:
    """The choice after `current`; after the last one, None (no filter)."""
    if current is None:
        return choices[0] if choices else None
    position = choices.index(current) + 1 if current in choices else len(choices)
    return choices[position] if position < len(choices) else None


def scope(history: RequestHistory | AlertHistory | None) -> str:
    """'this run only' (markup) when earlier runs could not be read."""
    if history is None:
        return "[dim]reading… [/]"
    return "" if history.earlier_runs else "[$warning]this run only[/] "


def shown(rows: int, history: RequestHistory | AlertHistory | None) -> str:
    """'24 shown', or 'all 24 shown' once the oldest row is among them (o would find nothing more)."""
    return f"all {rows} shown" if history is not None and history.older is None else f"{rows} shown"


def request_cells(record: RequestRecord, now: float | None) -> tuple[Text, ...]:
    """One request's row: local time, agent, priority, outcome, attempts, tokens in+out, latency, wait, model, id.

    Text, not str: DataTable reads a str as markup, and an agent name or id is whatever the caller sent.
    """
    outcome = record.outcome if record.status is None else f"{record.outcome} {record.status}"
    return (Text(when(record.at_wall, now)), Text(record.agent),
            Text(PRIORITY_SHORT.get(record.priority, record.priority)),
            Text(outcome, style="" if record.outcome == "ok" else "bold"),
            Text(str(record.attempts) if record.attempts else "-"),
            Text(f"{record.prompt_tokens}+{record.completion_tokens}"), Text(figures.millis(record.latency)),
            Text(figures.millis(record.queue_wait)), Text(record.model), Text(record.request_id or "-"))


def alert_cells(alert: Alert, now: float | None) -> tuple[Text, ...]:
    """One announcement's row: local time, what happened, level, the alert's name, its message."""
    if alert.cleared_at is not None:
        event = f"cleared ({figures.duration(alert.cleared_at - alert.opened_at)})"
    elif alert.updated_at == alert.opened_at:
        event = "opened"
    else:
        event = "still open"
    level = Text(alert.level, style="bold" if alert.level == "critical" else "")
    return Text(when(alert.updated_at, now)), Text(event), level, Text(alert.name), Text(alert.message)


def when(at: float, now: float | None) -> str:
    """Local time; the date too unless it is the same day as `now`."""
    moment = datetime.fromtimestamp(at).astimezone()
    if now is not None and moment.date() == datetime.fromtimestamp(now).astimezone().date():
        return f"{moment:%H:%M:%S}"
    return f"{moment:%m-%d %H:%M:%S}"


def local_zone(now: float | None) -> str:
    """'CET time': the zone the History's times are in, the same for every pane (figures.zone_name)."""
    return figures.zone_name(now)
