"""Groq quota pane: the default model's and each used model's four windows, the server's last word, the queue."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

from medops.console import figures, times
from medops.console.panes.pane import SnapshotPane, attached
from medops.core.clock import wall_text
from medops.core.snapshot import CoreSnapshot, ModelQuota, SchedulerSnapshot, StoreSnapshot

WINDOW_ORDER = ("rpm", "rpd", "tpm", "tpd")


class QuotaPane(SnapshotPane):
    """Requests and tokens per minute and per day, 429s, queue depth, in flight."""

    def __init__(self, *, id: str | None = "quota") -> None:
        super().__init__("Groq quota", id=id)

    def section(self, snapshot: CoreSnapshot) -> Any:
        return (snapshot.quota, snapshot.scheduler)

    def draw(self, snapshot: CoreSnapshot) -> str:
        quota = snapshot.quota
        lines = [queue_line(snapshot.scheduler, self.inner_width)]
        if quota.store is not None:
            lines.append(store_line(quota.store))
        if not quota.models:
            lines.append("[dim]no quota figures yet: no member has published its snapshot[/]" if attached(snapshot)
                         else "[dim]no quota figures yet: the Groq quota part is not running[/]")
        # The default model always shows its limits, used or not (before any request they are all
        # there is to see); other unused models' bars are all empty: one line for all of them
        # keeps the busy ones in view.
        unused = [m.model for m in quota.models if is_unused(m) and m.model != quota.default_model]
        unreached = quota.store is not None and quota.store.never_reached  # its windows of 0 are no figures
        for model in quota.models:
            if model.model == quota.default_model or not is_unused(model):
                lines.extend(model_lines(model, self.inner_width, default=model.model == quota.default_model,
                                         unreached=unreached))
        if unused:
            lines.append(f"[dim]unused so far: {figures.text(', '.join(unused))}[/]")
        return "\n".join(lines)


INTAKE_PAUSED = "[reverse $warning] intake paused [/]"
INTAKE_PAUSED_WIDTH = len(" intake paused ")


def queue_line(scheduler: SchedulerSnapshot, width: int) -> str:
    """Depth per priority, in flight against the cap, and lifetime outcomes; a paused intake said after them,
    on the next line when the badge would not fit whole (wrapped, it broke in two: "intake" / "paused")."""
    depths = " ".join(f"{figures.text(q.priority[:4])} [b]{q.depth}[/]" for q in scheduler.queues) or "none"
    line = (f"queued {depths} │ flight [b]{scheduler.in_flight}[/]/{scheduler.concurrency}"
            f" │ done {figures.count(scheduler.completed)} fail {figures.count(scheduler.failed)}"
            f" rej {figures.count(scheduler.rejected)}")
    if not scheduler.paused:
        return line
    fits = len(Text.from_markup(line).plain) + 1 + INTAKE_PAUSED_WIDTH <= width
    return f"{line}{' ' if fits else chr(10)}{INTAKE_PAUSED}"


def store_line(store: StoreSnapshot) -> str:
    """The fleet's quota store: whether it decides, how many members share it, how fast it answers."""
    members = f"{store.members_alive} member{'s' if store.members_alive != 1 else ''}"
    if store.attached:
        state = ("[reverse $error] store unreadable: last reading [/]" if store.state == "down"
                 else f"rtt p99 {store.rtt_p99_ms:.1f} ms")
        return f"fleet quota of [b]{members}[/] · attached: holds none · {state}"
    if store.state == "down":
        since = f" since {times.clock_time(store.down_since)}" if store.down_since is not None else ""
        share = f"local share 1/{store.share}" if store.share else "nothing admitted until it answers"
        return f"[reverse $error] fleet store unreachable{since}; {share} [/] [dim]{figures.text(store.url)}[/]"
    state = "re-seeding" if store.state == "seeding" else "shared"
    skew = f" [reverse $warning] clock {store.clock_skew:+.1f} s [/]" if abs(store.clock_skew) > 1 else ""
    return (f"fleet quota {state} by [b]{members}[/] · rtt p99 {store.rtt_p99_ms:.1f} ms · "
            f"me: this instance{skew}")


def is_unused(model: ModelQuota) -> bool:
    """Nothing admitted or waiting, no 429s or 498s, no server figures: nothing to draw."""
    return (model.waiting == 0 and model.rate_limited == 0 and model.refused_too_large == 0
            and model.capacity_exceeded == 0 and model.server.observed_at is None
            and all(w.used == 0 and w.blocked_for == 0 for w in model.windows))


def model_lines(model: ModelQuota, width: int, *, default: bool = False, unreached: bool = False) -> list[str]:
    """A heading (marking the default model), one bar per window, and the server's remaining figures. `unreached`:
    the member's fleet store never answered, so no window is known (a share of 0 is no figure): said instead."""
    marker = " [dim](default)[/]" if default else ""
    # 498s only once there were any: most keys never see one
    capacity = f"  498s [b]{model.capacity_exceeded}[/]" if model.capacity_exceeded else ""
    held = f" [reverse $warning] held {figures.duration(model.capacity_hold)} [/]" if model.capacity_hold > 0 else ""
    lines = [f"[b $primary]{figures.text(model.model)}[/]{marker}  waiting [b]{model.waiting}[/]"
             f"  429s [b]{model.rate_limited}[/]"
             f"  too large {model.refused_too_large}{capacity}{held}"]
    # name 5, figures 13, reset 13 and room for a "blocked" badge (and this instance's part): the rest is bar
    fleet = any(w.own is not None for w in model.windows)
    bar_width = max(6, width - (56 if fleet else 48))
    windows = sorted(model.windows, key=lambda w: WINDOW_ORDER.index(w.name) if w.name in WINDOW_ORDER else 9)
    if unreached:
        lines.append(f" [dim]{' '.join(w.name for w in windows)}: not known until the quota store answers[/]")
        windows = []
    for window in windows:
        used = f"{figures.count(window.used)}/{figures.count(window.limit)}"
        blocked = f" [reverse $error] 429 {figures.duration(window.blocked_for)} [/]" if window.blocked_for > 0 else ""
        own = f" [dim]me[/] {figures.count(window.own):>4}" if window.own is not None else ""
        # the bar counts what is held beside the use: a held window has no room (the figure stays the use)
        lines.append(f" {window.name:<3} {figures.bar(window.counted, window.limit, bar_width)}"
                     f" {used:>12}{own}"
                     f" reset {figures.duration(window.reset_in) if window.used else '-':>6}{blocked}")
        if window.held:
            ends = wall_text(window.held_until, time.time())
            lines.append(f"     [dim]{window.name} {figures.count(window.held)} held until {ends} "
                         f"({figures.text(window.held_why)})[/]")
        if any(part for _, part in window.parts):
            lines.append(parts_line(window.parts, width))
    server = model.server
    if server.observed_at is None:
        lines.append(" [dim]server: no x-ratelimit headers seen yet[/]")
    else:
        # the time it was seen, not its age: an age would redraw the pane every second
        seen = times.clock_time(server.observed_at, zone=True)
        lines.append(f" server left: {_maybe(server.remaining_requests)} req/d"
                     f" ({figures.duration(server.reset_requests)}) · {_maybe(server.remaining_tokens)} tok/m"
                     f" ({figures.duration(server.reset_tokens)}) [dim]seen {seen}[/]")
    return lines


def parts_line(parts: tuple[tuple[str, int], ...], width: int) -> str:
    """Each member's part of a window (an attached view's), largest first, cut to the pane's width."""
    shown = "  ".join(f"{name} {figures.count(part)}" for name, part in sorted(parts, key=lambda p: (-p[1], p[0]))
                      if part)
    text = f"     parts: {shown}"
    return f"[dim]{figures.text(text if len(text) <= width else text[:width - 1] + '…')}[/]"


def _maybe(value: int | None) -> str:
    return "?" if value is None else figures.count(value)
