"""`FleetPane`: the Fleet tab, one row per fleet member read from the store, and the organisation's windows.

The app reads the store at the refresh interval while this tab or the Overview
is shown, and hands each reading to both (this tab and the Overview's fleet
line). The rows sort by any column (its header, or s to cycle) and filter by a
substring (/), as the `FleetTable` model (console/fleet_table.py) says. Enter
opens a member's own overview (`MemberScreen`, panes/member_screen.py); p / P
pause and resume its intake (a, then p / P: every member).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from medops.console.fleet_access import FleetReader
from medops.console.fleet_table import COLUMNS, FleetTable
from medops.console.forms.capture import CapturingInput
from medops.console.panes.member_screen import MemberScreen

if TYPE_CHECKING:
    from medops.core.fleet.commands import Acknowledgement
    from medops.core.fleet.view import FleetView

NO_STORE = "no fleet store set: set store_url (MEDOPS_STORE_URL)"
HINT = "s sort (again: reverse) · / filter · enter open · p/P pause/resume · a p/P all"


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


class FleetPane(Vertical):
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
        self.model = FleetTable()  # the latest reading, its order and filter
        self.reads = 0  # readings applied (tests wait on it)
        self._all_armed = False
        self._asking: str | None = None  # "pause" or "resume" on every member, waiting for y
        self._error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(NO_STORE if self.reader is None else f"[dim]reading the fleet…   {HINT}[/]", id="fleet-status")
        yield CapturingInput(placeholder="filter members (any text in the row); enter keeps it, esc clears",
                    id="fleet-filter")
        table: DataTable[str | Text] = DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column.label, key=column.key)
        yield table
        yield Static("", id="fleet-windows")

    def on_mount(self) -> None:
        self.query_one("#fleet-filter", Input).display = False
        self.query_one("#fleet-table").display = self.reader is not None

    def set_interval_seconds(self, seconds: float) -> None:
        """The console's refresh interval, which an open member view reads at too."""
        self.interval = seconds
        for screen in self.app.screen_stack:
            if isinstance(screen, MemberScreen):
                screen.set_interval_seconds(seconds)

    @property
    def view(self) -> FleetView | None:
        """The latest reading of the fleet (None before the first)."""
        return self.model.view

    def show(self, view: FleetView) -> None:
        """A new reading of the fleet (the app reads it, for this tab and the Overview's fleet line alike)."""
        self._error = None
        self.model.view = view
        self.reads += 1
        self.fill()

    def failed(self, reason: str) -> None:
        """The store could not be read: the pane says why (the console stays up), the rows read stay."""
        self._error = reason
        self.query_one("#fleet-status", Static).update(Text(f"fleet not read: {reason}", style="bold red"))

    # ---- drawing ------------------------------------------------------------------

    def fill(self) -> None:
        """Redraw the rows (keeping the cursor on the same member) and the windows."""
        if self.view is None:
            return
        view = self.view
        table = self.query_one("#fleet-table", DataTable)
        selected = self.selected_instance()
        members = self.model.shown()
        # clear() puts the cursor back at (0, 0), which scrolls to the first column: keep where ← → (which
        # animate) are taking the view.
        scrolled = table.scroll_target_x
        table.clear()
        for member in members:
            table.add_row(*self.model.cells(member), key=member.instance)
        if selected is not None and any(m.instance == selected for m in members):
            table.move_cursor(row=table.get_row_index(selected))
        # Keep the columns the operator scrolled to (← →; at 80 columns the figures lie past the edge).
        table.call_after_refresh(table.scroll_to, x=scrolled, animate=False)
        self.query_one("#fleet-status", Static).update(self.status_text(len(members)))
        self.query_one("#fleet-windows", Static).update(windows_text(view))

    def status_text(self, shown: int) -> Text:
        """The model's summary (members by state, order, filter, what was skipped), then the keys."""
        status = self.model.summary(shown)
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
        self.model.sort_by(key)
        self.fill()

    def action_sort_next(self) -> None:
        """s: the column sorted ascending turns descending; a descending one gives way to the next, ascending."""
        self.model.sort_next()
        self.fill()

    def action_filter(self) -> None:
        field = self.query_one("#fleet-filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.model.filter_text = event.value.strip()
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
            self.app.push_screen(MemberScreen(member, self.view.in_line(name), self.view.read_at, self.reader,
                                              self.interval))
