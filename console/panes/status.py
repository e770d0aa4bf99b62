"""Status line: endpoint, refresh rate, display and intake state, ledger, uptime."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlparse

from textual.content import Content
from textual.widgets import Static

from medops.console import figures, times
from medops.core.snapshot import CoreSnapshot, StoreSnapshot

LEDGER_SHORT = {"read-write": "rw", "read-only": "ro"}
SEPARATOR = " │ "
SEPARATOR_TIGHT = "│"
LOCAL_WORDS = "Groq stand-in"  # medops' own local endpoint: it answers, but not from a model


@dataclass(frozen=True)
class ConsoleState:
    """What the console itself is doing, shown beside the core's state."""

    refresh_interval: float
    display_paused: bool
    theme: str
    width: int = 0  # the line's columns: parts that do not fit are joined tighter first (0: never)


class StatusLine(Static):
    """One line an on-call engineer reads first."""

    def __init__(self, *, id: str | None = "status") -> None:
        super().__init__("starting the core…", id=id)
        self._shown: tuple[object, ...] | None = None

    def show(self, snapshot: CoreSnapshot | None, state: ConsoleState) -> None:
        uptime = int(snapshot.uptime // 60) if snapshot else 0  # shown to the minute, redrawn once a minute
        store = snapshot.quota.store if snapshot else None
        key = (snapshot.endpoint if snapshot else None, snapshot.paused if snapshot else None,
               (store.state, store.members_alive, store.share) if store else None,
               snapshot.ledger.mode if snapshot else None, uptime, state,
               int(time.time()) if store is not None and store.state == "down" else None)  # "figures N s old" ages
        if key == self._shown:
            return
        self._shown = key
        self.update(status_text(snapshot, state))


def status_text(snapshot: CoreSnapshot | None, state: ConsoleState) -> str:
    """The status line's markup."""
    parts = status_parts(snapshot, state)
    wide = SEPARATOR.join(parts)
    # tighter rather than wrapped: a second line takes a row from the panes at 80x24 (it wraps if still too long)
    return SEPARATOR_TIGHT.join(parts) if state.width and Content.from_markup(wide).cell_length > state.width else wide


def status_parts(snapshot: CoreSnapshot | None, state: ConsoleState) -> list[str]:
    """The status line's parts, in the order read."""
    display = "[reverse $warning] DISPLAY PAUSED [/]" if state.display_paused else "[$success]live[/]"
    parts = [display, f"every {state.refresh_interval:g}s"]
    if snapshot is None:
        return [*parts, "core starting…"]
    endpoint = snapshot.endpoint
    store = snapshot.quota.store
    attached = store is not None and store.attached
    if attached and store is not None and store.state == "down" and not state.display_paused:
        # the figures are the last reading's, not live: say how old (the reads keep being retried)
        parts[0] = f"[reverse $error] figures {max(0, int(time.time() - snapshot.taken_at))} s old [/]"
    if endpoint.kind == "none":
        # attached, which Groq the members use is known once one has published its snapshot
        parts.insert(0, "Groq [dim]not known yet[/]" if attached else "endpoint [dim]none yet[/]")
    else:
        health = "[$success]ok[/]" if endpoint.healthy else "[reverse $error] DOWN [/]"
        # which Groq answers, in words a newcomer reads ("local ok" said neither)
        host = urlparse(endpoint.base_url).hostname or endpoint.base_url or "?"
        which = LOCAL_WORDS if endpoint.kind == "local" else f"Groq {figures.text(host)}"
        parts.insert(0, f"[b]{which}[/] {health}")
    if store is not None and store.attached:
        return [*parts, *attached_parts(snapshot, store)]
    if store is not None:
        if store.state == "down":
            since = f" since {times.clock_time(store.down_since)}" if store.down_since is not None else ""
            share = f"share 1/{store.share}" if store.share else "no share"
            parts.append(f"[reverse $error] FLEET STORE DOWN{since}, {share} [/]")
        else:
            parts.append(f"fleet {store.members_alive}")
    parts.append("[reverse $error] INTAKE PAUSED [/]" if snapshot.paused else "intake open")
    parts.append(f"ledger {figures.text(LEDGER_SHORT.get(snapshot.ledger.mode, snapshot.ledger.mode))}")
    parts.append(f"up {uptime_text(snapshot.uptime)}")
    return parts


def attached_parts(snapshot: CoreSnapshot, store: StoreSnapshot) -> list[str]:
    """`medops --attach`: the fleet watched, where, and whether its store still answers; no core of its own."""
    members = f"{store.members_alive} member{'s' if store.members_alive != 1 else ''}"
    parts = [f"[b]attached to the fleet[/] ({members}) at {figures.text(store.url)}"]
    if store.state == "down":
        since = f" since {times.clock_time(store.down_since)}" if store.down_since is not None else ""
        parts.append(f"[reverse $error] FLEET STORE UNREADABLE{since}: last reading shown [/]")
    if snapshot.paused:
        parts.append("[reverse $error] INTAKE PAUSED on every member [/]")
    parts.append(f"up {uptime_text(snapshot.uptime)}")
    return parts


def uptime_text(seconds: float) -> str:
    """Uptime to the minute: `<1m`, `42m`, `3h07m`, `2d04h`."""
    if seconds < 60:
        return "<1m"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    return figures.duration(seconds)
