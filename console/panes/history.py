"""The History tab: Groq requests and alerts across runs, newest first, in local time, paged back on demand.

Without a fleet store the core reads its ledger on the ledger's own thread;
workers await that and post the page, so the UI loop never waits on DuckDB. The
tab reads when it is shown, on r, and when a snapshot shows requests finished or
alerts announced while it is on screen and following the newest rows; a hidden
tab only notes that. With a store it reads the fleet's streams instead (every
member's rows, with an instance column): its poller (console/poller.py) reads the
streams' newest ids at the refresh rate while the tab is shown, and a page is read
when they moved.
Rows hold figures and ids only: prompt text is in neither, so it cannot reach here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, Static

from medops.console import figures, times
from medops.console.error_text import describe_error
from medops.console.fleet_access import FleetHistory
from medops.console.forms.core_handle import CoreHandle
from medops.console.poller import Poller, Polling
from medops.core.groq.requests import AGENTS

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.fleet.history import FleetAlerts, FleetRequests, StreamHeads
    from medops.core.ledger.history import AlertHistory, Before, RequestHistory
    from medops.core.ledger.records import RequestRecord
    from medops.core.snapshot import Alert, CoreSnapshot

    History = RequestHistory | AlertHistory | FleetRequests | FleetAlerts

PAGE = 100  # rows one page reads; o appends the next older page
REQUESTS, ALERTS = "requests", "alerts"
# The figures first, after the outcome: at 80 columns the labels and ids past them run off the edge, never a figure.
REQUEST_COLUMNS: tuple[str, ...] = ("time", "outcome", "latency", "wait", "tokens", "try", "agent", "prio", "model",
                                    "request id")
ALERT_COLUMNS: tuple[str, ...] = ("time", "event", "level", "alert", "message")
MEMBER_COLUMN = "instance"  # with a fleet store: which member (its instance name, as in Fleet)
MEMBER_AT = {REQUESTS: REQUEST_COLUMNS.index("agent"), ALERTS: 1}  # where: after the requests' figures, the time
PRIORITY_SHORT = {"critical": "crit", "normal": "norm"}


class PageFetched(Message):
    """A page of one table's history, for the fetch numbered `fetch`."""

    def __init__(self, table: str, fetch: int, history: History, append: bool) -> None:
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


class HistoryPane(Polling, Vertical):
    """Requests over alerts, each a scrollable table; o loads older rows into the focused one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Listed in the tab's own heading, not the footer: 80 columns have no room left for them.
        Binding("o", "older", "Older", show=False),
        Binding("m", "next_model", "Model", show=False),
        Binding("a", "next_agent", "Agent", show=False),
    ]

    def __init__(self, core: CoreHandle, models: tuple[str, ...], *, fleet: FleetHistory | None = None,
                 interval: float = 1.0, id: str | None = "history") -> None:
        """`fleet`: read the fleet's streams instead of this core's ledger; `interval`: how often to look."""
        super().__init__(id=id)
        self.core = core
        self.fleet = fleet
        self.interval = interval
        self.models = models
        self.model: str | None = None  # the requests shown: only this model's (None: all)
        self.agent: str | None = None
        self.requests: RequestHistory | FleetRequests | None = None  # the latest page read
        self.alerts: AlertHistory | FleetAlerts | None = None
        self.pages = {REQUESTS: 0, ALERTS: 0}  # pages shown since the latest reload
        self.fetches = 0  # pages that arrived, or failures (tests wait on it)
        self._fetch = {REQUESTS: 0, ALERTS: 0}  # number of each table's latest fetch: older answers are dropped
        self._loading = {REQUESTS: False, ALERTS: False}
        self._activity: Any = None  # the snapshot figures (or the streams' newest ids) that change when history does
        self._read_at: Any = None  # ... as they were at the latest reload
        self._now: float | None = None  # the latest snapshot's wall time, to show today's rows without a date
        self._agents_seen: set[str] = set()
        self._heads_error = ""
        # With a store: the streams' newest ids, read at the refresh rate while the tab is shown (see Poller).
        self.heads: Poller[StreamHeads] = Poller(self, self._read_heads, group="history-heads",
                                                 arrived=self._heads_read, failed=self._heads_failed,
                                                 wanted=lambda: self.fleet is not None and self.is_on_screen)

    def compose(self) -> ComposeResult:
        yield Label("", id="history-title")
        yield Static("", id="history-note")
        for table, columns in ((REQUESTS, REQUEST_COLUMNS), (ALERTS, ALERT_COLUMNS)):
            if table == ALERTS:
                yield Label("", id="history-alerts-title")
            data: DataTable[Text] = DataTable(id=f"history-{table}", cursor_type="row", zebra_stripes=True)
            if self.fleet is not None:
                columns = (*columns[:MEMBER_AT[table]], MEMBER_COLUMN, *columns[MEMBER_AT[table]:])
            for label in columns:
                data.add_column(label, width=len(label))  # widened by add_fitted as rows come
            yield data

    def on_mount(self) -> None:
        self.query_one("#history-note", Static).display = False
        self._titles()
        if self.fleet is not None:
            self.set_interval_seconds(self.interval)

    def set_interval_seconds(self, seconds: float) -> None:
        """With a fleet store: look at its streams every `seconds` (the console's refresh interval) while shown."""
        self.interval = seconds
        if self.fleet is not None:
            self.heads.every(seconds)

    async def _read_heads(self) -> StreamHeads:
        assert self.fleet is not None
        return await self.fleet.heads()

    def _heads_failed(self, reason: str) -> None:
        # the store away: said in the tab, which stays usable
        self._heads_error = reason
        self._titles()

    def _heads_read(self, heads: StreamHeads) -> None:
        had_error, self._heads_error = self._heads_error, ""
        self._activity = (heads.requests, heads.alerts)
        if self._activity == self._read_at and not had_error:
            return
        if any(self._loading.values()):
            return  # the page on its way ends with `_catch_up`
        if self.following:
            self.reload()
        else:
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
        if self.fleet is not None:
            return  # the fleet's streams say when history grew (`_heads_read`), not this core's figures
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
                kept = "ledger" if self.fleet is None else "fleet's stream"
                self.notify(f"No older {table}: the oldest the {kept} keeps is shown.", title="history")
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
        return {record.model for record in records(self.requests)}

    # ---- reading --------------------------------------------------------------------

    def _read(self, table: str, before: Any) -> None:
        self._fetch[table] += 1
        if self.fleet is not None:
            self._loading[table] = True
            self._run_fleet(table, self._fetch[table], self.fleet, before, self.model, self.agent)
            return
        core = self.core.ready()
        if core is None:
            self.post_message(PageFailed(table, self._fetch[table], "the core is still starting"))
            return
        self._loading[table] = True
        self._run(table, self._fetch[table], core, before, self.model, self.agent)

    @work(exit_on_error=False, group="history")
    async def _run_fleet(self, table: str, fetch: int, fleet: FleetHistory, before: str | None, model: str | None,
                         agent: str | None) -> None:
        history: FleetRequests | FleetAlerts
        try:
            if table == REQUESTS:
                history = await fleet.requests(before, PAGE, model, agent)
            else:
                history = await fleet.alerts(before, PAGE)
        except Exception as exc:  # the store away: shown in the tab; the console stays usable
            self.post_message(PageFailed(table, fetch, describe_error(exc)))
        else:
            self.post_message(PageFetched(table, fetch, history, append=before is not None))

    @work(exit_on_error=False, group="history")
    async def _run(self, table: str, fetch: int, core: CoreCommands, before: Before | None, model: str | None,
                   agent: str | None) -> None:
        history: RequestHistory | AlertHistory
        try:
            if table == REQUESTS:
                history = await core.request_history(before=before, limit=PAGE, model=model, agent=agent)
            else:
                history = await core.alert_history(before=before, limit=PAGE)
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
            requests = self.requests = cast("RequestHistory | FleetRequests", message.history)
            self._agents_seen.update(record.agent for record in records(requests))
            add_fitted(table, [request_row(row, self._now) for row in requests.requests])
        else:
            alerts = self.alerts = cast("AlertHistory | FleetAlerts", message.history)
            add_fitted(table, [alert_row(row, self._now, event) for row, event in alert_entries(alerts.alerts)])
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
            f"[dim]{requests}, newest first · {times.zone(self._now)} · o older · m model · a agent · r newest[/]")
        self.query_one("#history-alerts-title", Label).update(
            f"[b]Alerts[/] {scope(self.alerts)}[dim]· {alerts}, newest first · tab here, then o older[/]")
        notes = [history.note for history in (self.requests, self.alerts) if history is not None and history.note]
        if failure is not None:
            notes.insert(0, f"The {failure[0]} history could not be read: {failure[1]}")
        if self._heads_error:
            notes.insert(0, f"The fleet's history could not be read: {self._heads_error}")
        note = self.query_one("#history-note", Static)
        note.update(figures.text("\n".join(notes)))  # both tables' notes: each says what it left out
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


def scope(history: History | None) -> str:
    """'this run only' (markup) when earlier runs could not be read; 'every member' from the fleet's stream."""
    if history is None:
        return "[dim]reading… [/]"
    earlier_runs = getattr(history, "earlier_runs", None)  # None: the fleet's stream, which has no runs
    if earlier_runs is None:
        return "[dim]· all members [/]"
    return "" if earlier_runs else "[$warning]this run only[/] "


def records(history: RequestHistory | FleetRequests | None) -> list[RequestRecord]:
    """The request records of a page, from the ledger or the fleet's stream."""
    if history is None:
        return []
    return [row if not hasattr(row, "record") else row.record for row in history.requests]


def request_row(row: Any, now: float | None) -> tuple[Text, ...]:
    """A ledger record's cells, or a fleet stream row's with the member after the figures."""
    if not hasattr(row, "record"):
        return request_cells(row, now)
    cells = request_cells(row.record, now)
    return (*cells[:MEMBER_AT[REQUESTS]], Text(row.instance), *cells[MEMBER_AT[REQUESTS]:])


def alert_row(row: Any, now: float | None, event: str | None = None) -> tuple[Text, ...]:
    """A ledger announcement's cells, or a fleet stream row's with the member after the time."""
    if not hasattr(row, "alert"):
        return alert_cells(row, now, event)
    cells = alert_cells(row.alert, now, event)
    return (*cells[:MEMBER_AT[ALERTS]], Text(row.instance), *cells[MEMBER_AT[ALERTS]:])


def alert_entries(rows: Sequence[Any]) -> list[tuple[Any, str]]:
    """The announcements of a page (newest first) that each get a row, with what happened: an alert's opening,
    a change of its level, its clearing and its reopening.

    An open alert is announced again at each update (a repeat, a new value): those rows listed the same open
    alert over and over ("still open" twice for one member), and are left out. An alert that clears and soon
    opens again is the same alert (its first opening kept): its next announcement is its reopening. The oldest
    row of an alert on a page says what it says alone ("still open"): its opening is on an older page.
    """
    entries: list[tuple[Any, str]] = []
    latest: dict[tuple[str, str, float], Alert] = {}  # per member and alert: its latest announcement so far
    for row in reversed(rows):
        alert, member = (row.alert, row.instance) if hasattr(row, "alert") else (row, "")
        key = (member, alert.name, alert.opened_at)
        before, latest[key] = latest.get(key), alert
        if before is None:
            event = event_word(alert)
        elif alert.cleared_at is not None:
            if before.cleared_at == alert.cleared_at:
                continue  # the same clearing, announced again
            event = event_word(alert)
        elif before.cleared_at is not None:
            event = "reopened"
        elif alert.level != before.level:
            event = f"now {alert.level}"
        else:
            continue  # the same open alert again
        entries.append((row, event))
    return entries[::-1]


def shown(rows: int, history: History | None) -> str:
    """'24 shown', or 'all 24 shown' once the oldest row is among them (o would find nothing more)."""
    return f"all {rows} shown" if history is not None and history.older is None else f"{rows} shown"


def request_cells(record: RequestRecord, now: float | None) -> tuple[Text, ...]:
    """One request's row: local time, outcome, latency, wait, tokens in+out, attempts, agent, priority, model, id.

    Text, not str: DataTable reads a str as markup, and an agent name or id is whatever the caller sent.
    """
    outcome = record.outcome if record.status is None else f"{record.outcome} {record.status}"
    return (Text(times.when(record.at_wall, now)), Text(outcome, style="" if record.outcome == "ok" else "bold"),
            Text(figures.millis(record.latency)), Text(figures.millis(record.queue_wait)),
            Text(f"{record.prompt_tokens}+{record.completion_tokens}"),
            Text(str(record.attempts) if record.attempts else "-"), Text(record.agent),
            Text(PRIORITY_SHORT.get(record.priority, record.priority)), Text(record.model),
            Text(record.request_id or "-"))


def event_word(alert: Alert) -> str:
    """What one announcement says on its own: opened, still open (repeated or escalated), or cleared after how long."""
    if alert.cleared_at is not None:
        return f"cleared ({figures.duration(alert.cleared_at - alert.opened_at)})"
    return "opened" if alert.updated_at == alert.opened_at else "still open"


def alert_cells(alert: Alert, now: float | None, event: str | None = None) -> tuple[Text, ...]:
    """One announcement's row: local time, what happened (`event`, else what it says alone), level, name, message."""
    level = Text(alert.level, style="bold" if alert.level == "critical" else "")
    return (Text(times.when(alert.updated_at, now)), Text(event or event_word(alert)), level, Text(alert.name),
            Text(alert.message))
