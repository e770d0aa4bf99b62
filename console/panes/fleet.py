"""`FleetPane`: the Fleet tab, one row per fleet member read from the store, and the organisation's windows.

The store is read by a worker at the refresh interval, only while the tab is
shown; the rows sort by any column (its header, or s to cycle) and filter by a
substring (/). Enter opens a member's own overview, drawn read-only from its
published snapshot and kept current while open; p / P pause and resume its intake (a, then p / P: every member).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from medops.console.fleet_access import FleetReader
from medops.console.panes.pane import SnapshotPane
from medops.console.panes.pools import PoolsPane
from medops.console.panes.quota import QuotaPane
from medops.console.panes.slots import SlotsPane
from medops.console.panes.vitals import VitalsPane
from medops.console.poller import Poller, Polling
from medops.core.inert_text import visible
from medops.core.snapshot import CoreSnapshot, GatewaySnapshot

if TYPE_CHECKING:
    from medops.core.fleet.commands import Acknowledgement
    from medops.core.fleet.view import FleetView, MemberRow

NO_STORE = "no fleet store set: set store_url (MEDOPS_STORE_URL)"
HINT = "s sort (again: reverse) · / filter · enter open · p/P pause/resume · a p/P all"
PRIORITIES = ("critical", "high", "normal")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _role(member: MemberRow) -> Text:
    """The member's role; a gateway's with its clients connected and requests in flight."""
    role = Text(member.role)
    if member.gateway_clients is not None:
        role.append(f" {member.gateway_clients} clients, {member.gateway_in_flight} in flight", style="dim")
    return role


def gateway_text(gateway: GatewaySnapshot | None) -> Text:
    """A gateway member's keys: requests, queued, refused at the deadline and p50 queue wait (plain Text: names
    come from the store)."""
    if gateway is None:
        return Text()
    out = Text(f"gateway {gateway.url}: {gateway.clients} clients, {gateway.in_flight} in flight, "
               f"{gateway.requests:,} requests, {gateway.unauthorized:,} refused for a wrong key\n", style="bold")
    out.append(f"{'key':<24} {'agent':<14} {'requests':>9} {'queued':>7} {'deadline':>9} {'wait p50':>9}\n")
    for key in gateway.keys:
        out.append(f"{key.name:<24.24} {key.agent:<14.14} {key.requests:>9,} {key.queued:>7,} "
                   f"{key.refused_at_deadline:>9,} {key.queue_wait_p50:>8.2f}s\n")
    return out


def _state(member: MemberRow, now: float = 0.0) -> Text:
    """The state in words (stale and gone marked in text, not only colour; left, a clean end, is not a warning),
    paused said too."""
    word = member.state + (" paused" if member.paused else "")
    style = {"alive": "", "stale": "bold yellow", "gone": "bold red", "left": "dim"}.get(member.state, "")
    return Text(f"! {word}" if member.state in ("stale", "gone") else word, style=style)


@dataclass(frozen=True)
class Column:
    """One column of the members' table: its heading, how it sorts, how it reads."""

    key: str
    label: str
    sort: Callable[[MemberRow, float], Any]
    show: Callable[[MemberRow, float], str | Text]
    right: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("instance", "instance", lambda m, now: m.instance, lambda m, now: m.instance, right=False),
    Column("host", "host", lambda m, now: m.host, lambda m, now: m.host, right=False),
    Column("pid", "pid", lambda m, now: m.pid, lambda m, now: str(m.pid)),
    Column("role", "role", lambda m, now: m.role, lambda m, now: _role(m), right=False),
    Column("uptime", "up", lambda m, now: m.uptime(now), lambda m, now: _age(m.uptime(now))),
    Column("beat", "beat", lambda m, now: m.heartbeat_age, lambda m, now: _age(m.heartbeat_age)),
    Column("state", "state", lambda m, now: m.state, _state, right=False),
    Column("queued", "queued c/h/n", lambda m, now: sum(m.queued.values()),
           lambda m, now: "/".join(str(m.queued.get(p, 0)) for p in PRIORITIES)),
    Column("flight", "flight", lambda m, now: m.in_flight, lambda m, now: str(m.in_flight)),
    Column("done", "done", lambda m, now: m.done, lambda m, now: f"{m.done:,}"),
    Column("failed", "fail", lambda m, now: m.failed, lambda m, now: str(m.failed)),
    Column("429s", "429", lambda m, now: m.rate_limited, lambda m, now: str(m.rate_limited)),
    Column("rpm", "rpm", lambda m, now: m.own.get("rpm", 0), lambda m, now: str(m.own.get("rpm", 0))),
    Column("lag", "lag99", lambda m, now: m.loop_lag_p99_ms, lambda m, now: f"{m.loop_lag_p99_ms:.0f}ms"),
    Column("cpu", "cpu%", lambda m, now: m.cpu_percent, lambda m, now: f"{m.cpu_percent:.0f}"),
    Column("alerts", "alerts", lambda m, now: m.open_alerts, lambda m, now: str(m.open_alerts)),
)


def answers_text(what: str, acks: Sequence[Acknowledgement]) -> str:
    """Which members applied the command, which refused and why, which did not answer, which are gone."""
    if not acks:
        return f"{what}: no member alive to act on."
    lines = [f"{what}:"]
    for status, label in (("applied", "applied"), ("refused", "refused"), ("no answer", "did not answer"),
                          ("gone", "gone")):
        named = [a.instance + (f" ({a.detail})" if a.detail and status != "applied" else "")
                 for a in acks if a.status == status]
        if named:
            lines.append(f"{label}: {', '.join(named)}")
    return "\n".join(lines)


def windows_text(view: FleetView) -> Text:
    """The organisation's windows as the store counts them, each member's part named (as text: names come
    from the store)."""
    text = Text()
    text.append("Organisation's windows", style="bold")
    text.append(" (each member's part)")
    for window in view.windows:
        text.append("\n" + window.figures())
    if not view.windows:
        text.append("\nno member has published its quota yet", style="dim")
    return text


class FleetAct(Message):
    """The operator asked to pause or resume intake on `target` (an instance, or "*" for every member)."""

    def __init__(self, op: str, target: str) -> None:
        super().__init__()
        self.op = op
        self.target = target


class FleetPane(Polling, Vertical):
    """The Fleet tab's content: members, then the organisation's windows with each member's part."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "sort_next", "sort by a column; again: the other way", show=False),
        Binding("slash", "filter", "filter the members", show=False),
        Binding("p", "act('pause')", "pause the member's intake", show=False),
        Binding("P", "act('resume')", "resume the member's intake", show=False),
        Binding("a", "arm_all", "then p / P: every member (y confirms)", show=False),
        Binding("y", "confirm_all", "yes: every member", show=False),
    ]

    def __init__(self, reader: FleetReader | None, interval: float, *, id: str | None = "fleet-pane") -> None:
        super().__init__(id=id)
        self.reader = reader
        self.interval = interval
        self.view: FleetView | None = None
        self.sort_key = "instance"
        self.sort_reverse = False
        self.filter_text = ""
        self.reads = 0  # readings applied (tests wait on it)
        self._all_armed = False
        self._asking: str | None = None  # "pause" or "resume" on every member, waiting for y
        self._error: str | None = None
        self.poller: Poller[FleetView] = Poller(self, self._read, group="fleet", arrived=self._fleet_read,
                                                failed=self._fleet_failed, wanted=lambda: self.reader is not None)

    def compose(self) -> ComposeResult:
        yield Static(NO_STORE if self.reader is None else f"[dim]reading the fleet…   {HINT}[/]", id="fleet-status")
        yield Input(placeholder="filter members (any text in the row); enter keeps it, esc clears",
                    id="fleet-filter")
        table: DataTable[str | Text] = DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column.label, key=column.key)
        yield table
        yield Static("", id="fleet-windows")

    def on_mount(self) -> None:
        self.query_one("#fleet-filter", Input).display = False
        self.query_one("#fleet-table").display = self.reader is not None
        self.set_interval_seconds(self.interval)

    def set_interval_seconds(self, seconds: float) -> None:
        """Poll every `seconds` (the console's refresh interval) while the tab is shown."""
        self.interval = seconds
        self.poller.every(seconds, lambda: self.is_on_screen)
        for screen in self.app.screen_stack:
            if isinstance(screen, MemberScreen):
                screen.set_interval_seconds(seconds)

    def poll(self) -> None:
        """Read the fleet now, unless a reading is under way (then once more after it)."""
        self.poller.ask()

    async def _read(self) -> FleetView:
        assert self.reader is not None
        return await self.reader()

    def _fleet_read(self, view: FleetView) -> None:
        self._error = None
        self.view = view
        self.reads += 1
        self.fill()

    def _fleet_failed(self, reason: str) -> None:
        # the store away must not take the console down: the pane says so
        self._error = reason
        self.query_one("#fleet-status", Static).update(Text(f"fleet not read: {reason}", style="bold red"))

    # ---- drawing ------------------------------------------------------------------

    def shown_members(self) -> list[MemberRow]:
        """The members the filter lets through, in the chosen order."""
        if self.view is None:
            return []
        now = self.view.read_at
        column = next(c for c in COLUMNS if c.key == self.sort_key)
        needle = self.filter_text.casefold()
        rows = [m for m in self.view.members
                if not needle or needle in " ".join(str(c.show(m, now)) for c in COLUMNS).casefold()]
        return sorted(rows, key=lambda m: (column.sort(m, now), m.instance), reverse=self.sort_reverse)

    def fill(self) -> None:
        """Redraw the rows (keeping the cursor on the same member) and the windows."""
        if self.view is None:
            return
        view = self.view
        table = self.query_one("#fleet-table", DataTable)
        selected = self.selected_instance()
        members = self.shown_members()
        # clear() puts the cursor back at (0, 0), which scrolls to the first column: keep where ← → (which
        # animate) are taking the view.
        scrolled = table.scroll_target_x
        table.clear()
        for member in members:
            cells = [c.show(member, view.read_at) for c in COLUMNS]
            table.add_row(*[Text(c, justify="right" if col.right else "left") if isinstance(c, str) else c
                            for c, col in zip(cells, COLUMNS, strict=True)], key=member.instance)
        if selected is not None and any(m.instance == selected for m in members):
            table.move_cursor(row=table.get_row_index(selected))
        # Keep the columns the operator scrolled to (← →; at 80 columns the figures lie past the edge).
        table.call_after_refresh(table.scroll_to, x=scrolled, animate=False)
        self.query_one("#fleet-status", Static).update(self.status_text(len(members)))
        self.query_one("#fleet-windows", Static).update(windows_text(view))

    def status_text(self, shown: int) -> Text:
        """Members by state, the order, the filter (as typed: text, never markup) and what was skipped."""
        assert self.view is not None
        view = self.view
        arrow = "↓" if self.sort_reverse else "↑"
        status = Text(f"{view.store}: {view.tally()} · sort: {self.sort_key} {arrow}")
        if self.filter_text:
            status.append(f" · filter {visible(self.filter_text)!r}: {shown} shown")
        if view.skipped:
            status.append(f"\n! {view.skipped_note()}", style="bold yellow")
        status.append(f"\n{HINT}", style="dim")
        return status

    def selected_instance(self) -> str | None:
        table = self.query_one("#fleet-table", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    # ---- keys ---------------------------------------------------------------------

    @on(DataTable.HeaderSelected)
    def _header_pressed(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def sort_by(self, key: str) -> None:
        """Sort by column `key`; the same column again reverses the order."""
        self.sort_reverse = not self.sort_reverse if key == self.sort_key else False
        self.sort_key = key
        self.fill()

    def action_sort_next(self) -> None:
        """s: the column sorted ascending turns descending; a descending one gives way to the next, ascending."""
        if not self.sort_reverse:
            self.sort_reverse = True
        else:
            keys = [c.key for c in COLUMNS]
            self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
            self.sort_reverse = False
        self.fill()

    def action_filter(self) -> None:
        field = self.query_one("#fleet-filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.fill()

    @on(Input.Submitted, "#fleet-filter")
    def _filter_kept(self) -> None:
        field = self.query_one("#fleet-filter", Input)
        field.display = bool(field.value)
        self.query_one("#fleet-table").focus()

    def on_key(self, event: Any) -> None:
        if self._asking is not None and event.key != "y":  # any other key: no
            self.notify(f"Not sent: {self._asking} intake on every member.", title="fleet")
            self._asking = None
        field = self.query_one("#fleet-filter", Input)
        if event.key == "escape" and field.has_focus:
            field.value = ""
            field.display = False
            self.query_one("#fleet-table").focus()
            event.stop()

    def action_arm_all(self) -> None:
        self._all_armed = True
        self.notify("a: the next p or P acts on every member, once confirmed (any other key: the selected one).",
                    title="fleet")

    def action_act(self, op: str) -> None:
        if self._all_armed:  # every member at once: asked first, as one key too many would stop the fleet
            self._all_armed = False
            self._asking = op
            self.notify(f"{op.title()} intake on EVERY member? y: yes; any other key: no.", title="fleet",
                        severity="warning", timeout=10)
            return
        target = self.selected_instance()
        if target is None:
            self.notify("No member selected: the fleet has none listed.", title="fleet", severity="warning")
            return
        self.post_message(FleetAct(op, target))

    def action_confirm_all(self) -> None:
        """y, after `a p` or `a P`: send it to every member."""
        op, self._asking = self._asking, None
        if op is not None:
            self.post_message(FleetAct(op, "*"))

    @on(DataTable.RowSelected, "#fleet-table")
    def _open_member(self, event: DataTable.RowSelected) -> None:
        if self.view is None or event.row_key.value is None:
            return
        name = event.row_key.value
        member = next((m for m in self.view.members if m.instance == name), None)
        if member is not None:
            self.app.push_screen(MemberScreen(member, self.view.snapshots.get(name), self.view.read_at, self.reader,
                                              self.interval))


class MemberScreen(Polling, Screen[None]):
    """One member's overview, drawn read-only from the snapshot it published and read again at the refresh
    rate while open (in a worker, as the Fleet tab reads); the title says how old the picture is, and when the
    member has gone stale or left. Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back", key_display="esc")]

    def __init__(self, member: MemberRow, published: CoreSnapshot | None, read_at: float,
                 reader: FleetReader | None = None,
                 interval: float = 1.0) -> None:
        super().__init__()
        self.member: MemberRow | None = member  # None: the store no longer lists it
        self.published = published
        self.read_at = read_at
        self.reader = reader
        self.interval = interval
        self.name_shown = member.instance
        self.reads = 0  # readings applied since it opened (tests wait on it)
        self.snapshot: CoreSnapshot | None = published
        self.taken_at: float | None = published.taken_at if published is not None else None
        self._error = ""
        self.poller: Poller[FleetView] = Poller(self, self._read, group="member", arrived=self._member_read,
                                                failed=self._member_failed,
                                                wanted=lambda: self.reader is not None and self.is_current)

    def compose(self) -> ComposeResult:
        yield Static(self.title_text(), id="member-title")
        with VerticalScroll(id="member-grid"):
            if self.snapshot is None:
                yield Static(self.summary(), id="member-summary", classes="pane")
            else:
                for pane in (VitalsPane(), QuotaPane(), PoolsPane(), SlotsPane()):
                    pane.apply(self.snapshot)
                    yield pane
                yield Static(gateway_text(self.snapshot.gateway), id="member-gateway")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval_seconds(self.interval)

    def set_interval_seconds(self, seconds: float) -> None:
        """Read the member again every `seconds` (the console's refresh interval) while this view is open."""
        self.interval = seconds
        if self.reader is not None:
            self.poller.every(seconds)

    def poll(self) -> None:
        """Read the fleet now, unless a reading is under way (then once more after it)."""
        self.poller.ask()

    async def _read(self) -> FleetView:
        assert self.reader is not None
        return await self.reader()

    def _member_failed(self, reason: str) -> None:
        # the store away: said in the title, the last picture stays
        self._error = reason
        self.read_at = time.time()  # the picture keeps ageing while the store is away
        self.query_one("#member-title", Static).update(self.title_text())

    async def _member_read(self, view: FleetView) -> None:
        self._error = ""
        self.reads += 1
        self.read_at = view.read_at
        self.member = next((m for m in view.members if m.instance == self.name_shown), None)
        snapshot = view.snapshots.get(self.name_shown)
        if snapshot is not None:
            # An expired or unreadable snapshot keeps the last picture on screen: the title says how old it is.
            self.published, self.snapshot = snapshot, snapshot
            self.taken_at = snapshot.taken_at
            await self._show_panes(snapshot)
        elif self.snapshot is None and self.member is not None:
            self.query_one("#member-summary", Static).update(self.summary())
        self.query_one("#member-title", Static).update(self.title_text())

    async def _show_panes(self, snapshot: CoreSnapshot) -> None:
        """Apply a new snapshot to the panes; the first one replaces the summary of figures."""
        grid = self.query_one("#member-grid", VerticalScroll)
        if not grid.query(VitalsPane):
            await grid.remove_children()
            await grid.mount_all([VitalsPane(), QuotaPane(), PoolsPane(), SlotsPane(), Static(id="member-gateway")])
        for pane in grid.query(SnapshotPane):
            pane.apply(snapshot)
        self.query_one("#member-gateway", Static).update(gateway_text(snapshot.gateway))

    def title_text(self) -> Text:
        """Who, how old the picture is, and a warning when the member is stale, gone or no longer listed."""
        m = self.member
        title = Text()
        title.append(self.name_shown, style="bold")
        if m is not None:
            title.append(f" on {m.host} (pid {m.pid}, {m.role})")
        title.append(" · read-only")
        if self.taken_at is not None:
            title.append(f", its snapshot {_age(self.read_at - self.taken_at)} old")
        elif self.published is None:
            title.append(", no snapshot published")
        title.append(" · esc: back to the fleet")
        warning = ""
        if m is None:
            warning = "no longer listed by the store; below: the last it published"
        elif m.state != "alive":
            why = {"left": "it stopped cleanly", "gone": "its heartbeat expired"}.get(m.state, "its heartbeat is late")
            warning = f"{m.state}: no heartbeat for {_age(m.heartbeat_age)} ({why}); below: the last it published"
        if self._error:
            warning = f"store not read: {self._error}; below: as last read" \
                + (f" · {warning}" if warning else "")
        if warning:
            title.append(f"\n! {warning}", style="bold red" if m is None or m.state == "gone" or self._error
                         else "bold yellow")
        return title

    def summary(self) -> Text:
        """The member's figures in words, when it has published no snapshot this console can read."""
        m = self.member
        why = "it has published no snapshot (or none this console can read: see the Fleet tab)"
        if m is None:
            return Text(f"No overview: {why}, and the store no longer lists it.", style="dim")
        queued = ", ".join(f"{p} {m.queued.get(p, 0)}" for p in PRIORITIES)
        own = ", ".join(f"{k} {v:,}" for k, v in m.own.items()) or "none"
        summary = Text(f"No overview: {why}.", style="dim")
        summary.append(f"\nqueued: {queued}\nin flight {m.in_flight}, done {m.done:,}, failed {m.failed}, 429s "
                       f"{m.rate_limited}\nits part of the windows: {own}\nloop lag p99 {m.loop_lag_p99_ms:.0f} ms, "
                       f"CPU {m.cpu_percent:.0f}%, memory {m.memory_percent:.0f}%, open alerts {m.open_alerts}"
                       + (", intake paused" if m.paused else ""))
        return summary
