"""`MemberScreen`: one fleet member's own overview, opened from the Fleet tab (enter), read-only.

It is drawn from the snapshot the member published, with the Overview's panes
and the requests it holds (ids, figures and why each waits, never a prompt),
and read again at the refresh rate while open; a member that published none is
shown as a summary of its figures. Names come from the store: shown as text.
"""

from __future__ import annotations

import textwrap
import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from medops.console.figures import age
from medops.console.fleet_access import FleetReader
from medops.console.fleet_table import PRIORITIES
from medops.console.panes.pane import SnapshotPane
from medops.console.panes.pools import PoolsPane
from medops.console.panes.quota import QuotaPane
from medops.console.panes.slots import SlotsPane
from medops.console.panes.vitals import VitalsPane
from medops.console.poller import Poller, Polling
from medops.console.request_table import priority_text, who
from medops.console.times import clock_time
from medops.core.inert_text import visible
from medops.core.snapshot import CoreSnapshot, GatewaySnapshot

if TYPE_CHECKING:
    from medops.core.fleet.view import FleetView, MemberRow

MEMBER_REQUESTS = 12  # request rows listed at most: the screen is the member's overview, not its Requests tab
# (heading, width) of each column the member's requests show; the wait reason takes the rest of the line
REQUEST_COLUMNS = (("id", 14), ("agent/key", 20), ("prio", 15), ("state", 9))
COLUMNS_WIDTH = sum(width + 1 for _, width in REQUEST_COLUMNS)  # each column and the space after it
REASON_BESIDE = 40  # columns the reason needs beside the others; narrower, it goes on a line of its own
REASON_LINES = 3  # lines one reason may take (a member's reason is its own text, up to TEXT_CHARS)


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


def cut(text: str, room: int) -> str:
    """`text` in at most `room` characters, "…" marking a cut."""
    return text if len(text) <= room else text[:max(0, room - 1)] + "…"


def reason_lines(reason: str, room: int) -> list[str]:
    """A wait reason in lines of at most `room` characters, at word breaks, REASON_LINES at most (the last cut
    with "…" if more is left)."""
    lines = textwrap.wrap(reason, max(1, room), break_on_hyphens=False) or [""]
    if len(lines) > REASON_LINES:
        lines = [*lines[:REASON_LINES - 1], cut(" ".join(lines[REASON_LINES - 1:]), room)]
    return lines


def requests_text(snapshot: CoreSnapshot, most: int = MEMBER_REQUESTS, width: int = 160) -> Text:
    """The member's requests as its snapshot lists them (most urgent first): id, agent or key, priority, state
    and why it waits, at most `most` rows, then how many more it holds; every line within `width` columns (the
    reason beside the others when there is room for it, else on lines of its own below them, wrapped under
    itself), so nothing runs out of its column. Plain Text: it all came from the store."""
    scheduler = snapshot.scheduler
    held, rows = scheduler.requests_held, scheduler.requests[:most]
    out = Text(f"Requests held: {held:,}", style="bold")
    if not rows:
        out.append("\nnone queued or in flight" if not held else "\nnone listed in its snapshot", style="dim")
        return out
    beside = width - COLUMNS_WIDTH >= REASON_BESIDE
    reason_at, room = ("", width - COLUMNS_WIDTH) if beside else ("\n  ", width - 2)
    heading = " ".join(f"{name:<{w}}" for name, w in REQUEST_COLUMNS)
    out.append(f"\n{heading} why it waits" if beside else f"\n{cut(heading.rstrip(), width)}{reason_at}why it waits")
    for row in rows:
        cells = (row.request_id, who(row), priority_text(row), row.state)
        line = " ".join(f"{visible(cell)[:w]:<{w}}" for cell, (_, w) in zip(cells, REQUEST_COLUMNS, strict=True))
        out.append("\n" + cut(line if beside else line.rstrip(), width))
        lines = reason_lines(visible(row.reason), room)
        out.append((" " if beside else reason_at) + lines[0])
        for more in lines[1:]:  # under its own first line, never under another column
            out.append("\n" + " " * (COLUMNS_WIDTH if beside else 2) + more)
    if held > len(rows):
        out.append(f"\n… {held - len(rows):,} more held, not listed here", style="dim")
    return out


class MemberRequests(Static):
    """The member's requests (`requests_text`), drawn for the width they are given and again when it changes."""

    def __init__(self, snapshot: CoreSnapshot, *, id: str | None = "member-requests") -> None:
        super().__init__(id=id)
        self.snapshot = snapshot

    def show(self, snapshot: CoreSnapshot) -> None:
        self.snapshot = snapshot
        self.draw()

    def on_resize(self) -> None:
        # after this layout pass: a height changed within it would not be laid out (the lines stayed cut)
        self.call_after_refresh(self.draw)

    def draw(self) -> None:
        width = self.content_region.width
        self.update(requests_text(self.snapshot, width=width if width > 0 else 80))


class MemberScreen(Polling, Screen[None]):
    """One member's overview, drawn read-only from the snapshot it published and read again at the refresh
    rate while open (in a worker, as the Fleet tab reads); the title says how old the picture is, and when the
    member has gone stale or left (and at what time). Esc goes back."""

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
                yield MemberRequests(self.snapshot)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval_seconds(self.interval)
        self.call_after_refresh(self._lay_out)

    def _lay_out(self) -> None:
        """Lay the panes out again once they have drawn: a pane first drawn as this screen is shown keeps the
        height of its placeholder line otherwise (seen: Vital signs, the quota and the pools one line each)."""
        for pane in self.query(SnapshotPane):
            pane.refresh(layout=True)

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
        snapshot = view.in_line(self.name_shown)  # its put-off requests say whose go first
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
            await grid.mount_all([VitalsPane(), QuotaPane(), PoolsPane(), SlotsPane(), Static(id="member-gateway"),
                                  MemberRequests(snapshot)])
            self.call_after_refresh(self._lay_out)
        for pane in grid.query(SnapshotPane):
            pane.apply(snapshot)
        self.query_one("#member-gateway", Static).update(gateway_text(snapshot.gateway))
        self.query_one(MemberRequests).show(snapshot)

    def title_text(self) -> Text:
        """Who, how old the picture is, and a warning when the member is stale, gone or no longer listed."""
        m = self.member
        title = Text()
        title.append(self.name_shown, style="bold")
        if m is not None:
            title.append(f" on {m.host} (pid {m.pid}, {m.role})")
        title.append(" · read-only")
        if self.taken_at is not None:
            title.append(f", its snapshot {age(self.read_at - self.taken_at)} old")
        elif self.published is None:
            title.append(", no snapshot published")
        title.append(" · esc: back to the fleet")
        warning = ""
        if m is None:
            warning = "no longer listed by the store; below: the last it published"
        elif m.state == "left":  # its snapshot is the one it took as it began to stop
            warning = f"left at {clock_time(m.last_beat)}, {age(m.heartbeat_age)} ago (it stopped cleanly); below: " \
                      "its figures as it left"
        elif m.state != "alive":
            why = "its heartbeat expired" if m.state == "gone" else "its heartbeat is late"
            warning = f"{m.state}: no heartbeat for {age(m.heartbeat_age)} ({why}); below: the last it published"
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
