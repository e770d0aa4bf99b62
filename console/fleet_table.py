"""The Fleet tab's model: its columns, sort order and filter over one reading of the fleet, with no app.

Rows come from the store (`FleetView`): names and figures are whatever members
published, so every cell is plain text or `Text`, never markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text

from medops.console.figures import age
from medops.core.inert_text import visible

if TYPE_CHECKING:
    from medops.core.fleet.view import FleetView, MemberRow

PRIORITIES = ("critical", "high", "normal")
# How to look at another fleet of the same store, from the Fleet tab.
OTHERS_HOW = "watch one with MEDOPS_STORE_NAMESPACE=NAME medops --attach, or medops fleet --namespace NAME"


def role_text(member: MemberRow) -> Text:
    """The member's role; a gateway's with its clients connected and requests in flight."""
    role = Text(member.role)
    if member.gateway_clients is not None:
        role.append(f" {member.gateway_clients} clients, {member.gateway_in_flight} in flight", style="dim")
    return role


def state_text(member: MemberRow, now: float = 0.0) -> Text:
    """The state in words (stale and gone marked in text, not only colour; left, a clean end, is not a warning),
    paused said too."""
    word = member.state + (" paused" if member.paused else "")
    style = {"alive": "", "stale": "bold yellow", "gone": "bold red", "left": "dim"}.get(member.state, "")
    return Text(f"! {word}" if member.state in ("stale", "gone") else word, style=style)


HOST_WIDTH = 24


def clipped(value: str, width: int) -> str:
    """`value` within `width` characters, a cut one ending in "…" (the whole name is on the member's screen)."""
    return value if len(value) <= width else value[:width - 1] + "…"


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
    # A host name can be 253 characters (a hostile one seen widening the table past 160 columns): cut to fit.
    Column("host", "host", lambda m, now: m.host, lambda m, now: clipped(m.host, HOST_WIDTH), right=False),
    Column("pid", "pid", lambda m, now: m.pid, lambda m, now: str(m.pid)),
    Column("role", "role", lambda m, now: m.role, lambda m, now: role_text(m), right=False),
    Column("uptime", "up", lambda m, now: m.uptime(now), lambda m, now: age(m.uptime(now))),
    Column("beat", "beat", lambda m, now: m.heartbeat_age, lambda m, now: age(m.heartbeat_age)),
    Column("state", "state", lambda m, now: m.state, state_text, right=False),
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
SORT_KEYS = tuple(c.key for c in COLUMNS)


@dataclass
class FleetTable:
    """Which members show and in what order: a column to sort by (s cycles), reversed or not, and a filter
    substring, over the latest reading of the fleet."""

    sort_key: str = "instance"
    reverse: bool = False
    filter_text: str = ""
    view: FleetView | None = None

    def shown(self) -> list[MemberRow]:
        """The members the filter lets through (any cell, case-insensitive), in the chosen order, ties by name."""
        if self.view is None:
            return []
        now = self.view.read_at
        column = next(c for c in COLUMNS if c.key == self.sort_key)
        needle = self.filter_text.casefold()
        rows = [m for m in self.view.members
                if not needle or needle in " ".join(str(c.show(m, now)) for c in COLUMNS).casefold()]
        return sorted(rows, key=lambda m: (column.sort(m, now), m.instance), reverse=self.reverse)

    def cells(self, member: MemberRow) -> list[Text]:
        """A member's cells, each plain `Text` justified as its column is."""
        now = self.view.read_at if self.view is not None else 0.0
        return [Text(cell, justify="right" if column.right else "left") if isinstance(cell, str) else cell
                for cell, column in ((c.show(member, now), c) for c in COLUMNS)]

    def sort_by(self, key: str) -> None:
        """Sort by column `key`; the same column again reverses the order."""
        self.reverse = not self.reverse if key == self.sort_key else False
        self.sort_key = key

    def sort_next(self) -> None:
        """s: the column sorted ascending turns descending; a descending one gives way to the next, ascending."""
        if not self.reverse:
            self.reverse = True
            return
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.reverse = False

    def summary(self, shown: int) -> Text:
        """Members by state, the order, the filter (as typed: text, never markup) and what was skipped."""
        assert self.view is not None
        view = self.view
        arrow = "↓" if self.reverse else "↑"
        # The namespace says which fleet of the store this is: a member with another Groq key or endpoint is in
        # another one (named below), not missing from this one.
        fleet = f" · fleet {view.namespace}" if view.namespace else ""
        status = Text(f"{view.store}{fleet}: {view.tally()} · sort: {self.sort_key} {arrow}")
        if view.others:
            status.append(f"\n! {view.others_note(OTHERS_HOW)}", style="bold yellow")
        if self.filter_text:
            status.append(f" · filter {visible(self.filter_text)!r}: {shown} shown")
        if view.skipped:
            status.append(f"\n! {view.skipped_note()}", style="bold yellow")
        return status
