"""Vital signs: one figure from every part of the core, in a few lines at the top of the Overview.

At 80x24 the detailed panes below do not all fit; this one does, so the first screen
always says how full each active model's quota is, how deep the queue is, what is in
flight, how full case memory and each pool are, CPU, memory and the open alerts.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.text import Text

from medops.console import figures
from medops.console.panes.pane import SnapshotPane, attached
from medops.console.panes.pools import EXPECTED_POOLS
from medops.console.panes.quota import WINDOW_ORDER, is_unused
from medops.core.burn_rate import burn_rates, out_words
from medops.core.snapshot import Alert, CoreSnapshot, ModelQuota

if TYPE_CHECKING:
    from medops.core.fleet.view import FleetView

POOL_SHORT = {"process": "proc"}
LINE_WIDTH = 76  # inside the pane's border and padding at 80 columns
MODEL_COLUMN = 26  # model names longer than this are cut with … (the Groq quota pane below has them whole)


class VitalsPane(SnapshotPane):
    """Queue, quota per active model, slots, contexts, pools, CPU, memory, loop lag and open alerts."""

    def __init__(self, *, id: str | None = "vitals") -> None:
        super().__init__("Vital signs", id=id)
        self.border_subtitle = "↑↓ PgUp PgDn scroll"
        self.fleet = ""  # with a store set: the fleet's line (read from the store, not from the snapshot)

    def show_fleet(self, line: str) -> None:
        """The fleet's summary line, drawn first; redrawn now if shown."""
        if line != self.fleet:
            self.fleet = line
            if self.is_on_screen:
                self._draw_latest()

    def section(self, snapshot: CoreSnapshot) -> Any:
        return tuple(vital_lines(snapshot)), self.fleet

    def draw(self, snapshot: CoreSnapshot) -> str:
        return "\n".join([self.fleet] * bool(self.fleet) + vital_lines(snapshot))


def vital_lines(snapshot: CoreSnapshot) -> list[str]:
    """The vital signs as markup lines, each under 78 columns."""
    scheduler = snapshot.scheduler
    queued = " ".join(f"{figures.text(q.priority[:4])} [b]{q.depth}[/]" for q in scheduler.queues) or "none"
    intake = "[reverse] intake PAUSED [/]" if scheduler.paused else "intake open"
    lines = [f"queue {queued} │ in flight [b]{scheduler.in_flight}[/]/{scheduler.concurrency} │ {intake}"]
    quota = snapshot.quota
    active = [m for m in quota.models if m.model == quota.default_model or not is_unused(m)]
    unreached = quota.store is not None and quota.store.never_reached  # its windows of 0 are no figures
    lines.extend(unreached_line(model) if unreached else model_line(model) for model in active)
    burn = burn_line(snapshot)
    if burn:
        lines.append(burn)
    if not quota.models:
        lines.append("[dim]quota: no member has published yet[/]" if attached(snapshot)
                     else "[dim]quota: not running yet[/]")
    system = snapshot.system
    cpu = f"[b]{system.cpu_percent:.0f}%[/]" if system.sampled_at else "[dim]-[/]"
    memory = f"[b]{system.memory_percent:.0f}%[/]" if system.sampled_at else "[dim]-[/]"
    lag = f"{system.loop_lag_ms:.0f}ms" if system.sampled_at else "[dim]-[/]"  # attached: no loop of a core here
    lines.append(f"CPU {cpu} │ memory {memory} │ loop p99 {lag} │ {memory_part(snapshot)}")
    lines.append(pools_part(snapshot))
    lines.append(alerts_part(snapshot.alerts))
    return lines


def fleet_line(view: FleetView) -> str:
    """The fleet in one line under 78 columns: members by state, the organisation's rpm and tpm of the
    default model against their limits, members whose intake is paused, open alerts across the fleet."""
    states = Counter(str(m.state) for m in view.members)
    present = [m for m in view.members if m.state.present]
    counts = " ".join(f"[reverse]{states[s]} {s}[/]" if states[s] and s != "alive" else f"{states[s]} {s}"
                      for s in ("stale", "gone")) + (f" {states['left']} left" if states["left"] else "")
    default = view.default_model()
    windows = {w.name: w for w in view.windows if w.model == default}
    use = " ".join(f"{name} [b]{figures.count(windows[name].used)}[/]/{figures.count(windows[name].limit)}"
                   for name in ("rpm", "tpm") if name in windows) or "[dim]no quota figures yet[/]"
    # One word, not the figures (the line would pass 78 columns): the use alone read as room while an emptied
    # store held the rest of the window, in a trial; the Fleet tab says how much and until when.
    if any(windows[name].held for name in ("rpm", "tpm") if name in windows):
        use += " [reverse]held[/]"
    paused = sum(m.paused for m in present)
    alerts = sum(m.open_alerts for m in present)
    return (f"fleet [b]{states['alive']}[/] alive {counts} │ {use} │ "
            + (f"[reverse]{paused} paused[/]" if paused else "0 paused")
            + f" │ {alerts} alert{'s' if alerts != 1 else ''}")


def burn_line(snapshot: CoreSnapshot) -> str:
    """The day windows being spent, soonest out first, at the last hour's pace: 'burn rpd 1.2k/h out at 21:40 ·
    tpd 90k/h lasts over a day', a window that runs out before it frees emphasised; '' when none is spent."""
    now = snapshot.taken_at
    rates = sorted((r for r in burn_rates(snapshot.quota, now) if r.per_hour > 0),
                   key=lambda r: r.runs_out_at if r.runs_out_at is not None else math.inf)
    several = len({r.model for r in rates}) > 1
    head = "burn (fleet)" if any(r.fleet for r in rates) else "burn"  # the organisation's pace, from the store
    shown = head
    for rate in rates:
        name = f"{rate.model[:MODEL_COLUMN // 2]} " if several else ""
        piece = f"{name}{rate.window} {figures.count(rate.per_hour)}/h {out_words(rate, now)}"
        if len(Text.from_markup(shown).plain) + len(piece) + 3 > LINE_WIDTH:
            return shown + " …"
        drawn = f"[b reverse]{figures.text(piece)}[/]" if rate.runs_out_first else figures.text(piece)
        shown += (" · " if shown != head else " ") + drawn
    return shown if rates else ""


def model_name(model: ModelQuota) -> str:
    """The model's name in MODEL_COLUMN columns at most, a cut marked with …"""
    return model.model if len(model.model) <= MODEL_COLUMN else model.model[:MODEL_COLUMN - 1] + "…"


def model_line(model: ModelQuota) -> str:
    """A model and how full each of its windows is, the fullest emphasised."""
    name = model_name(model)
    windows = sorted(model.windows, key=lambda w: WINDOW_ORDER.index(w.name) if w.name in WINDOW_ORDER else 9)
    parts = []
    for window in windows:
        # Past the limit is full, not more: on a fleet's local share `used` counts what the others may hold
        # (a trial showed "rpm 429%", read as 429s); a limit of 0 (a store never reached) has no room at all.
        # What is held counts too: a window 10 used + 20 held of 30 is full ("rpm 33%" read as room, in a trial).
        fraction = min(1.0, window.counted / window.limit) if window.limit > 0 else 1.0
        shown = "<1%" if 0 < fraction < 0.005 else figures.percent(fraction)  # in use is never 0%
        share = f"{window.name} {shown:>4}"
        parts.append(f"[b reverse]{share}[/]" if fraction >= figures.CRITICAL_AT else share)
    blocked = " [reverse] 429 [/]" if any(w.blocked_for > 0 for w in model.windows) else ""
    return f"{figures.text(name):<{MODEL_COLUMN}} {' '.join(parts)}{blocked}"


def unreached_line(model: ModelQuota) -> str:
    """A model of a member whose fleet store never answered: no window is known, and nothing is admitted (its
    windows of 0 read as "rpm 100%", a spent quota, in a trial)."""
    return f"{figures.text(model_name(model)):<{MODEL_COLUMN}} [b reverse] quota store not reached [/] nothing admitted"


def memory_part(snapshot: CoreSnapshot) -> str:
    slots, contexts = snapshot.slots, snapshot.contexts
    if slots.total == 0:
        return "slots [dim]-[/]"
    return f"slots [b]{slots.used}[/]/{slots.total} · contexts {contexts.active}/{contexts.pool_size}"


def pools_part(snapshot: CoreSnapshot) -> str:
    """Active of capacity per pool, with a +queued figure where work waits."""
    by_name = {pool.name: pool for pool in snapshot.pools}
    parts = []
    for name in [*EXPECTED_POOLS, *sorted(set(by_name) - set(EXPECTED_POOLS))]:
        pool = by_name.get(name)
        if pool is None:
            continue
        waiting = f"[b]+{pool.queued}[/]" if pool.queued else ""
        parts.append(f"{figures.text(POOL_SHORT.get(name, name))} {pool.active}/{pool.capacity}{waiting}")
    return "pools " + (" · ".join(parts) if parts else "[dim]-[/]")


def alerts_part(alerts: tuple[Alert, ...]) -> str:
    """Open alerts by level, and the worst one's name."""
    still_open = [a for a in alerts if a.cleared_at is None]
    seen = len([a for a in still_open if a.acknowledged or a.silenced_until])
    seen_note = f" [dim]· {seen} acknowledged or silenced[/]" if seen else ""
    open_now = sorted((a for a in still_open if not (a.acknowledged or a.silenced_until)),
                      key=lambda a: a.updated_at or a.opened_at, reverse=True)
    if not open_now:
        return f"alerts: none open{seen_note}" if not seen else f"alerts: no new ones{seen_note}"
    critical = [a for a in open_now if a.level == "critical"]
    warnings = len(open_now) - len(critical)
    counts = " ".join(part for part in (f"[reverse] {len(critical)} CRIT [/]" if critical else "",
                                        f"{warnings} warn" if warnings else "") if part)
    ordered = [a.name for a in critical + [a for a in open_now if a.level != "critical"]]
    # names while the line stays within LINE_WIDTH (an attached view's are long: member/alert); the rest as …
    room = LINE_WIDTH - len(Text.from_markup(f"alerts: {counts} …{seen_note}").plain)
    shown: list[str] = []
    for name in ordered[:3]:
        if len(", ".join([*shown, name])) > room:
            break
        shown.append(name)
    if not shown:
        shown = [ordered[0][:max(8, room - 1)]]
    more = "…" if len(shown) < len(ordered) or shown[0] != ordered[0] else ""
    return f"alerts: {counts} [b]{figures.text(', '.join(shown))}[/]{more}{seen_note}"
