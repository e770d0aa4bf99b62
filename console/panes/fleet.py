"""`FleetPane`: the Fleet tab, one row per fleet member read from the store, and the organisation's windows.

The store is read by a worker at the refresh interval, only while the tab is
shown; the rows sort by any column (its header, or s to cycle) and filter by a
substring (/). Enter opens a member's own overview, drawn read-only from its
published snapshot; p / P pause and resume its intake (a, then p / P: every member).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static

from medops.console.error_text import describe_error
from medops.console.fleet_access import FleetReader
from medops.console.panes.pools import PoolsPane
from medops.console.panes.quota import QuotaPane
from medops.console.panes.slots import SlotsPane
from medops.console.panes.vitals import VitalsPane
from medops.core.snapshot import snapshot_from_dict

if TYPE_CHECKING:
    from medops.core.fleet.commands import Acknowledgement
    from medops.core.fleet.view import FleetView, MemberRow

NO_STORE = "no fleet store set: set store_url (MEDOPS_STORE_URL)"
HINT = "s sort · / filter · enter open · p/P pause/resume · a p/P all"
PRIORITIES = ("critical", "high", "normal")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _state(member: MemberRow, now: float = 0.0) -> Text:
    """The state in words (stale and gone marked in text, not only colour), paused said too."""
    word = member.state + (" paused" if member.paused else "")
    style = {"alive": "", "stale": "bold yellow", "gone": "bold red"}.get(member.state, "")
    return Text(f"! {word}" if member.state != "alive" else word, style=style)


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
    Column("role", "role", lambda m, now: m.role, lambda m, now: m.role, right=False),
    Column("uptime", "up", lambda m, now: now - m.started, lambda m, now: _age(now - m.started)),
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


class FleetRead(Message):
    """One reading of the fleet, for the pane to show."""

    def __init__(self, view: FleetView) -> None:
        super().__init__()
        self.view = view


class FleetReadFailed(Message):
    """The store could not be read; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class FleetAct(Message):
    """The operator asked to pause or resume intake on `target` (an instance, or "*" for every member)."""

    def __init__(self, op: str, target: str) -> None:
        super().__init__()
        self.op = op
        self.target = target


class FleetPane(Vertical):
    """The Fleet tab's content: members, then the organisation's windows with each member's part."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "sort_next", "Sort", show=False),
        Binding("slash", "filter", "Filter", show=False),
        Binding("p", "act('pause')", "Pause member", show=False),
        Binding("P", "act('resume')", "Resume member", show=False),
        Binding("a", "arm_all", "All members", show=False),
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
        self._reading = False
        self._all_armed = False
        self._timer: Timer | None = None
        self._error: str | None = None

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
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(seconds, self._tick)

    def _tick(self) -> None:
        if self.is_on_screen:
            self.poll()

    def poll(self) -> None:
        """Read the fleet now, unless a reading is under way (ticks never pile up)."""
        if self.reader is None or self._reading:
            return
        self._reading = True
        self._read()

    @work(exclusive=True, exit_on_error=False, group="fleet")
    async def _read(self) -> None:
        assert self.reader is not None
        try:
            view = await self.reader()
        except Exception as exc:  # the store away must not take the console down: the pane says so
            self.post_message(FleetReadFailed(describe_error(exc)))
        else:
            self.post_message(FleetRead(view))

    @on(FleetRead)
    def _fleet_read(self, message: FleetRead) -> None:
        self._reading = False
        self._error = None
        self.view = message.view
        self.reads += 1
        self.fill()

    @on(FleetReadFailed)
    def _fleet_failed(self, message: FleetReadFailed) -> None:
        self._reading = False
        self._error = message.reason
        self.query_one("#fleet-status", Static).update(Text(f"fleet not read: {message.reason}", style="bold red"))

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
        table.clear()
        for member in members:
            cells = [c.show(member, view.read_at) for c in COLUMNS]
            table.add_row(*[Text(c, justify="right" if col.right else "left") if isinstance(c, str) else c
                            for c, col in zip(cells, COLUMNS, strict=True)], key=member.instance)
        if selected is not None and any(m.instance == selected for m in members):
            table.move_cursor(row=table.get_row_index(selected))
        alive = sum(m.state == "alive" for m in view.members)
        arrow = "↓" if self.sort_reverse else "↑"
        filtered = f" · filter {self.filter_text!r}: {len(members)} shown" if self.filter_text else ""
        self.query_one("#fleet-status", Static).update(
            f"{view.store}: {alive} alive, {len(view.members) - alive} stale or gone · sort: {self.sort_key} "
            f"{arrow}{filtered}\n[dim]{HINT}[/]")
        lines = ["[b]Organisation's windows[/] (each member's part)"]
        for window in view.windows:
            parts = ", ".join(f"{name} {n:,}" for name, n in sorted(window.parts.items()) if n)
            lines.append(f"{window.model} {window.name}: {window.used:,}/{window.limit:,}"
                         + (f"  ({parts})" if parts else ""))
        if not view.windows:
            lines.append("[dim]no member has published its quota yet[/]")
        self.query_one("#fleet-windows", Static).update("\n".join(lines))

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
        field = self.query_one("#fleet-filter", Input)
        if event.key == "escape" and field.has_focus:
            field.value = ""
            field.display = False
            self.query_one("#fleet-table").focus()
            event.stop()

    def action_arm_all(self) -> None:
        self._all_armed = True
        self.notify("a: the next p or P acts on every member (any other key: the selected one).", title="fleet")

    def action_act(self, op: str) -> None:
        target = "*" if self._all_armed else self.selected_instance()
        self._all_armed = False
        if target is None:
            self.notify("No member selected: the fleet has none listed.", title="fleet", severity="warning")
            return
        self.post_message(FleetAct(op, target))

    @on(DataTable.RowSelected, "#fleet-table")
    def _open_member(self, event: DataTable.RowSelected) -> None:
        if self.view is None or event.row_key.value is None:
            return
        name = event.row_key.value
        member = next((m for m in self.view.members if m.instance == name), None)
        if member is not None:
            self.app.push_screen(MemberScreen(member, self.view.snapshots.get(name), self.view.read_at))


class MemberScreen(Screen[None]):
    """One member's overview, drawn read-only from the snapshot it published; esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back", key_display="esc")]

    def __init__(self, member: MemberRow, published: Any, read_at: float) -> None:
        super().__init__()
        self.member = member
        self.published = published
        self.read_at = read_at

    def compose(self) -> ComposeResult:
        m = self.member
        yield Static(f"[b]{m.instance}[/] on {m.host} (pid {m.pid}, {m.role}, {m.state}) · read-only, as it "
                     f"published it {_age(m.heartbeat_age)} ago · esc: back to the fleet", id="member-title")
        snapshot = None
        if self.published is not None:
            try:
                snapshot = snapshot_from_dict(self.published)
            except (ValueError, KeyError, TypeError):
                snapshot = None  # another version's snapshot: its figures below still say enough
        with VerticalScroll(id="member-grid"):
            if snapshot is None:
                yield Static(self.summary(), id="member-summary", classes="pane")
            else:
                for pane in (VitalsPane(), QuotaPane(), PoolsPane(), SlotsPane()):
                    pane.apply(snapshot)
                    yield pane
        yield Footer()

    def summary(self) -> str:
        """The member's figures in words, when its snapshot cannot be drawn with the panes."""
        m = self.member
        why = "it has published no snapshot" if self.published is None else "its snapshot is of another version"
        queued = ", ".join(f"{p} {m.queued.get(p, 0)}" for p in PRIORITIES)
        own = ", ".join(f"{k} {v:,}" for k, v in m.own.items()) or "none"
        return (f"[dim]No overview: {why}.[/]\nqueued: {queued}\nin flight {m.in_flight}, done {m.done:,}, "
                f"failed {m.failed}, 429s {m.rate_limited}\nits part of the windows: {own}\nloop lag p99 "
                f"{m.loop_lag_p99_ms:.0f} ms, CPU {m.cpu_percent:.0f}%, memory {m.memory_percent:.0f}%, "
                f"open alerts {m.open_alerts}" + (", intake paused" if m.paused else ""))
