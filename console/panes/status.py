"""Status line: endpoint, refresh rate, display and intake state, ledger, uptime."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from textual.widgets import Static

from medops.console import figures, times
from medops.core.snapshot import CoreSnapshot

LEDGER_SHORT = {"read-write": "rw", "read-only": "ro"}
LOCAL_WORDS = "Groq stand-in"  # medops' own local endpoint: it answers, but not from a model


@dataclass(frozen=True)
class ConsoleState:
    """What the console itself is doing, shown beside the core's state."""

    refresh_interval: float
    display_paused: bool
    theme: str


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
               snapshot.ledger.mode if snapshot else None, uptime, state)
        if key == self._shown:
            return
        self._shown = key
        self.update(status_text(snapshot, state))


def status_text(snapshot: CoreSnapshot | None, state: ConsoleState) -> str:
    """The status line's markup."""
    display = "[reverse $warning] DISPLAY PAUSED [/]" if state.display_paused else "[$success]live[/]"
    parts = [display, f"every {state.refresh_interval:g}s"]
    if snapshot is None:
        return " │ ".join([*parts, "core starting…"])
    endpoint = snapshot.endpoint
    if endpoint.kind == "none":
        parts.insert(0, "endpoint [dim]none yet[/]")
    else:
        health = "[$success]ok[/]" if endpoint.healthy else "[reverse $error] DOWN [/]"
        # which Groq answers, in words a newcomer reads ("local ok" said neither)
        host = urlparse(endpoint.base_url).hostname or endpoint.base_url or "?"
        which = LOCAL_WORDS if endpoint.kind == "local" else f"Groq {figures.text(host)}"
        parts.insert(0, f"[b]{which}[/] {health}")
    store = snapshot.quota.store
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
    return " │ ".join(parts)


def uptime_text(seconds: float) -> str:
    """Uptime to the minute: `<1m`, `42m`, `3h07m`, `2d04h`."""
    if seconds < 60:
        return "<1m"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    return figures.duration(seconds)
