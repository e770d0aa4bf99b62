"""`RequestsPane`: the Requests tab, one row per Groq request the core holds, and the keys to act on one.

It draws the scheduler's rows from each snapshot (the `RequestTable` model sorts
and filters them); c cancels the selected request (c again confirms), + and -
raise and lower its priority, s sorts, / filters. Actions go through the core's
commands (attached to the fleet: to the member holding the request), and
`--read-only` refuses them. Every cell is plain text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from medops.console.error_text import describe_error
from medops.console.forms.capture import CapturingInput
from medops.console.forms.core_handle import STARTING, CoreHandle
from medops.console.request_table import PRIORITY_ORDER, RequestTable, row_key
from medops.core.errors import MedopsError
from medops.core.fleet.commands import operator_name
from medops.core.groq.wait_reason import FleetLine, with_fleet_line
from medops.core.snapshot import CoreSnapshot, RequestRow

if TYPE_CHECKING:
    from medops.core.fleet.view import FleetView

HINT = "c cancel · + / - priority · s sort · / filter"
RAISE = {"normal": "high", "high": "critical"}
LOWER = {"critical": "high", "high": "normal"}


class RequestsPane(Vertical):
    """The Requests tab's content: a status line, a filter field and the rows."""

    DEFAULT_CSS = """
    RequestsPane { height: 1fr; }
    #requests-status { height: auto; }
    #requests-table { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel", "Cancel request", show=False),
        Binding("plus,equals_sign", "priority(1)", "Raise priority", show=False),
        Binding("minus", "priority(-1)", "Lower priority", show=False),
        Binding("s", "sort_next", "Sort", show=False),
        Binding("slash", "filter", "Filter", show=False),
    ]

    def __init__(self, handle: CoreHandle, *, id: str | None = "requests-pane") -> None:
        super().__init__(id=id)
        self.handle = handle
        self.model = RequestTable()
        self.held = 0
        self.armed: str | None = None  # the request a first c asked to cancel: a second c confirms
        self._keyed: dict[str, RequestRow] = {}  # the rows in the table, by their key
        self.applied = 0  # snapshots drawn (tests wait on it)
        self._latest: CoreSnapshot | None = None
        self._view: FleetView | None = None  # the app's latest reading of the fleet
        self._line: tuple[FleetView, FleetLine] | None = None  # the members' requests in line, from that reading

    def compose(self) -> ComposeResult:
        yield Static(Text(f"waiting for the first snapshot…   {HINT}", style="dim"), id="requests-status")
        yield CapturingInput(placeholder="filter requests (any text in the row); enter keeps it, esc clears",
                    id="requests-filter")
        table: DataTable[Text] = DataTable(id="requests-table", cursor_type="row", zebra_stripes=True)
        self._add_columns(table)
        yield table

    def _add_columns(self, table: DataTable[Text]) -> None:
        for column in self.model.columns:
            table.add_column(column.label, key=column.key)

    def on_mount(self) -> None:
        self.query_one("#requests-filter", Input).display = False

    # ---- drawing ------------------------------------------------------------------

    def apply(self, snapshot: CoreSnapshot) -> None:
        """Take a new snapshot; draw it now only if the tab is shown."""
        self._latest = snapshot
        if self.is_on_screen:
            self.fill()

    def on_show(self) -> None:
        self.fill()

    def show_fleet(self, view: FleetView) -> None:
        """Take a reading of the fleet: this core's requests the store put off say whose go first. Counted here,
        for display, from the reading the app already makes (a core reads no other member's snapshot)."""
        self._view = view
        if self.is_on_screen:
            self.fill()

    def fleet_line(self) -> FleetLine | None:
        """The members' requests in line from the latest reading, counted once per reading, when drawn."""
        view = self._view
        if view is None:
            return None
        if self._line is None or self._line[0] is not view:
            self._line = view, view.line()
        return self._line[1]

    def shown_snapshot(self) -> CoreSnapshot | None:
        """The latest snapshot, its deferred rows given the fleet's line when this core is a member of one."""
        latest, store = self._latest, self._latest.quota.store if self._latest is not None else None
        if latest is None or store is None or store.attached or not any(r.deferred for r in
                                                                         latest.scheduler.requests):
            return latest  # attached: the rows come from the fleet's reading, their line given already
        line = self.fleet_line()
        return with_fleet_line(store.instance, latest, line) if line is not None else latest

    def fill(self) -> None:
        """Redraw the rows, keeping the cursor on the same request."""
        latest = self.shown_snapshot()
        if latest is None:
            return
        self.model.rows = latest.scheduler.requests
        self.held = latest.scheduler.requests_held
        table = self.query_one("#requests-table", DataTable)
        attached = latest.quota.store is not None and latest.quota.store.attached
        if attached != self.model.attached:  # known from the first snapshot: the fleet's rows add a member column
            self.model.attached = attached
            table.clear(columns=True)
            self._add_columns(table)
        selected = self.selected()
        rows = self.model.shown()
        scrolled = table.scroll_target_x
        table.clear()
        self._keyed = {}
        for row in rows:
            key = row_key(row)
            if key in self._keyed:
                continue  # a forged repeat of a row shown already (a member's own core never lists one twice)
            self._keyed[key] = row
            table.add_row(*[Text(cell, justify="right" if column.right else "left")
                            for cell, column in zip(self.model.cells(row), self.model.columns, strict=True)],
                          key=key)
        if selected is not None and row_key(selected) in self._keyed:
            table.move_cursor(row=table.get_row_index(row_key(selected)))
        table.call_after_refresh(table.scroll_to, x=scrolled, animate=False)
        self.applied += 1
        self.show_status(len(self._keyed))

    def scope(self) -> str:
        """Whose requests these are: a member's own tab lists only its core's (a trial read "0 held" as the fleet's,
        with 35 waiting across it)."""
        store = self._latest.quota.store if self._latest is not None else None
        if store is None:
            return ""
        return " across the fleet" if store.attached else " by this core (the others': Fleet tab, Enter on a member)"

    def show_status(self, shown: int | None = None) -> None:
        status = Text(self.model.summary(self.held, len(self.model.shown()) if shown is None else shown, self.scope()))
        if self.armed is not None:
            status.append(f"\ncancel request {self.armed}? c again: yes · any other key: no", style="bold yellow")
        else:
            status.append(f"\n{HINT}", style="dim")
        self.query_one("#requests-status", Static).update(status)

    def selected(self) -> RequestRow | None:
        """The request under the cursor, if any."""
        table = self.query_one("#requests-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._keyed.get(key) if key is not None else None

    # ---- keys ---------------------------------------------------------------------

    def on_key(self, event: Any) -> None:
        field = self.query_one("#requests-filter", Input)
        if event.key == "escape" and field.has_focus:
            field.value = ""
            field.display = False
            self.query_one("#requests-table").focus()
            event.stop()
        elif self.armed is not None and event.key != "c":
            self.armed = None  # any other key: no
            self.show_status()

    @on(DataTable.HeaderSelected)
    def _header_pressed(self, event: DataTable.HeaderSelected) -> None:
        self.model.sort_by(str(event.column_key.value))
        self.fill()

    def action_sort_next(self) -> None:
        self.model.sort_next()
        self.fill()

    def action_filter(self) -> None:
        field = self.query_one("#requests-filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#requests-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.model.filter_text = event.value.strip()
        self.fill()

    @on(Input.Submitted, "#requests-filter")
    def _filter_kept(self) -> None:
        field = self.query_one("#requests-filter", Input)
        field.display = bool(field.value)
        self.query_one("#requests-table").focus()

    def action_cancel(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("No request selected: the core holds none.", title="requests", severity="warning")
            return
        if self.armed != row.request_id:
            self.armed = row.request_id
            self.show_status()
            return
        self.armed = None
        self.show_status()
        self._act(f"cancelling request {row.request_id}",
                  lambda core: core.cancel_request(row.request_id, by=_operator()))

    def action_priority(self, step: int) -> None:
        row = self.selected()
        if row is None:
            self.notify("No request selected: the core holds none.", title="requests", severity="warning")
            return
        wanted = (RAISE if step > 0 else LOWER).get(row.priority)
        if wanted is None:
            self.notify(f"Request {row.request_id} is {row.priority} already: "
                        f"{'the highest' if step > 0 else 'the lowest'} there is.", title="requests", markup=False)
            return
        if step > 0 and _rank(wanted) < _rank(row.max_priority):
            self.notify(f"Request {row.request_id} may go up to {row.max_priority} at most (its key's or agent's "
                        "bound).", title="requests", severity="warning", markup=False)
            return
        self._act(f"setting request {row.request_id} to {wanted}",
                  lambda core: core.set_request_priority(row.request_id, wanted, by=_operator()))

    def _act(self, what: str, call: Any) -> None:
        """Refuse under --read-only or while starting; else do it and say what the core answered."""
        if self.handle.read_only:
            self.notify(f"Read-only console (--read-only): {what} refused, nothing was sent. Start medops without "
                        "--read-only to act.", title="read-only", severity="warning", timeout=8, markup=False)
            return
        core = self.handle.ready()
        if core is None:
            self.notify(STARTING, title="requests", severity="warning")
            return
        try:
            answer = call(core)
        except MedopsError as exc:
            self.notify(describe_error(exc), title="requests", severity="warning", timeout=10, markup=False)
            return
        self.notify(answer, title="requests", timeout=6, markup=False)
        self.call_later(self.run_action, "app.refresh_now")  # the row as it is now, not at the next tick


def _rank(priority: str) -> int:
    return PRIORITY_ORDER.get(priority, 3)


def _operator() -> str:
    """Who acts, as every record of it says: the console's user@host."""
    return f"console {operator_name()}"
