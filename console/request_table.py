"""The Requests tab's model: its columns, sort order and filter over the scheduler's rows, with no app.

Rows come from a snapshot (this core's, or a member's published one): every cell
is drawn as plain text from ids, figures and the reason in words, never markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medops.console import figures
from medops.core.inert_text import visible
from medops.core.snapshot import RequestRow

PRIORITY_ORDER = {"critical": 0, "high": 1, "normal": 2}
MEMBER_WIDTH = 16  # a member's name in the attached view's column; the whole name is on the Fleet tab
SEND_ORDER = "order"  # the default sort: as the snapshot lists them (in flight, then as they would be sent)


def duration(seconds: float | None) -> str:
    """A short age or time left: 7s, 3m05s, 2h01m; "-" for none."""
    return "-" if seconds is None else figures.age(seconds)


def priority_text(row: RequestRow) -> str:
    """"normal^high" when aging raised it (it competes as high), else its priority."""
    return f"{row.priority}^{row.effective}" if row.promoted else row.priority


def member_text(row: RequestRow) -> str:
    """The member holding the row within MEMBER_WIDTH: a longer name ("host-pid-suffix") is cut in the middle,
    keeping more of its end (the pid and suffix tell two members of one host apart) than of its host."""
    name = visible(row.member)
    if len(name) <= MEMBER_WIDTH:
        return name
    tail = MEMBER_WIDTH // 2 + 2
    return f"{name[:MEMBER_WIDTH - 1 - tail]}…{name[-tail:]}"


def row_key(row: RequestRow) -> str:
    """A row's key in the table: its member and its id. Two members may list one id, and a forged store even
    one member twice (a repeated key made the table raise)."""
    return f"{row.member}\x1f{row.request_id}"


def who(row: RequestRow) -> str:
    """Its gateway key or agent; on an attached view, after the member holding it: "ward-1/triage"."""
    return f"{row.member}/{row.client or row.agent}" if row.member else row.client or row.agent


@dataclass(frozen=True)
class Column:
    """One column: its heading, how it sorts, how it reads (plain text)."""

    key: str
    label: str
    sort: Callable[[RequestRow], Any]
    show: Callable[[RequestRow], str]
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("id", "id", lambda r: r.request_id, lambda r: r.request_id[:14]),
    Column("priority", "prio", lambda r: PRIORITY_ORDER.get(r.effective, 3), priority_text),
    Column("state", "state", lambda r: r.state, lambda r: r.state),
    Column("age", "age", lambda r: -r.age, lambda r: duration(r.age), right=True),
    Column("wait", "why it waits", lambda r: r.reason, lambda r: r.reason),
    Column("who", "agent/key", lambda r: r.client or r.agent, lambda r: r.client or r.agent),
    Column("model", "model", lambda r: r.model, lambda r: r.model),
    Column("tokens", "tokens", lambda r: -r.tokens, lambda r: f"{r.tokens:,}", right=True),
    Column("deadline", "deadline", lambda r: r.deadline_left if r.deadline_left is not None else float("inf"),
           lambda r: duration(r.deadline_left), right=True),
    Column("attempt", "try", lambda r: -r.attempt, lambda r: str(r.attempt) if r.attempt else "-", right=True),
    Column("groq", "at groq", lambda r: -r.at_groq, lambda r: duration(r.at_groq) if r.state == "sending" else "-",
           right=True),
)
# Attached to the fleet, which member holds each row, beside its id: at 80 columns the agent/key column is
# off screen, and an on-call engineer must know where a request is to act on it.
MEMBER = Column("member", "member", lambda r: r.member, member_text)
ATTACHED_COLUMNS: tuple[Column, ...] = (COLUMNS[0], MEMBER, *COLUMNS[1:])


@dataclass
class RequestTable:
    """Which rows show and in what order: a sort key (s cycles), reversed or not, and a filter substring."""

    sort_key: str = SEND_ORDER
    reverse: bool = False
    filter_text: str = ""
    rows: tuple[RequestRow, ...] = field(default_factory=tuple)
    attached: bool = False  # the rows are the fleet's, each with its member

    @property
    def columns(self) -> tuple[Column, ...]:
        """The columns shown: attached to the fleet, with the member holding each row."""
        return ATTACHED_COLUMNS if self.attached else COLUMNS

    def sort_keys(self) -> tuple[str, ...]:
        """The orders s cycles through: the send order, then each column's."""
        return (SEND_ORDER, *(c.key for c in self.columns))

    def shown(self) -> list[RequestRow]:
        """The rows the filter lets through (any cell, or a member's whole name; case-insensitive), in the chosen
        order."""
        needle = self.filter_text.casefold()
        kept = [(i, r) for i, r in enumerate(self.rows)
                if not needle or needle in " ".join([r.member, *(c.show(r) for c in self.columns)]).casefold()]
        if self.sort_key == SEND_ORDER:
            ordered = [r for _, r in kept]
            return ordered[::-1] if self.reverse else ordered
        column = next(c for c in self.columns if c.key == self.sort_key)
        return [r for _, r in sorted(kept, key=lambda pair: (column.sort(pair[1]), pair[0]), reverse=self.reverse)]

    def sort_next(self) -> str:
        """Sort by the next column (after the last, the send order again); the key now in force."""
        keys = self.sort_keys()
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.reverse = False
        return self.sort_key

    def sort_by(self, key: str) -> None:
        """Sort by `key`; the same key again reverses the order."""
        self.reverse = not self.reverse if key == self.sort_key else False
        self.sort_key = key

    def cells(self, row: RequestRow) -> list[str]:
        """A row's cells as plain text (what came from a member is made visible: no control characters)."""
        return [visible(c.show(row)) for c in self.columns]

    def summary(self, held: int, shown: int, scope: str = "") -> str:
        """How many are held (and where: `scope`) and shown, the order and the filter (as typed, shown as text)."""
        arrow = "v" if self.reverse else "^"
        listed = len(self.rows)
        text = f"{held:,} held{scope}" + (f", the {listed:,} most urgent listed" if listed < held else "")
        text += f" · sort: {self.sort_key} {arrow}"
        if self.filter_text:
            text += f" · filter {visible(self.filter_text)!r}: {shown} shown"
        return text

