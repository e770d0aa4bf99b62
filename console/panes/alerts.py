"""Alerts pane: open and recent alerts newest first, one row per cause, then what the tuner changed.

Focused (tab to it, or click), k acknowledges the open alerts and s silences them
for an hour (u lifts that); the command palette does the same for one alert.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from medops.console import figures, times
from medops.console.alert_groups import AlertGroup, group_alerts
from medops.console.error_text import describe_error
from medops.console.forms.core_handle import STARTING, CoreHandle
from medops.console.panes.pane import SnapshotPane
from medops.core.errors import MedopsError
from medops.core.snapshot import Alert, CoreSnapshot, TunerChange

MAX_ALERTS = 20
MAX_TUNER_CHANGES = 5
SILENCE_FOR = 3_600.0  # seconds s silences the open alerts for


class AlertsPane(SnapshotPane):
    """Alerts newest first; critical ones stand out even without colour."""

    can_focus = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "acknowledge", "Ack"),
        Binding("s", "silence", "Silence 1h"),
        Binding("u", "unsilence", "Unsilence"),
    ]

    def __init__(self, core: CoreHandle | None = None, *, id: str | None = "alerts") -> None:
        super().__init__("Alerts", id=id)
        self.core = core or CoreHandle()
        self.border_subtitle = "tab here: k ack · s silence 1h"

    def open_alerts(self) -> list[Alert]:
        """The alerts open in the latest snapshot."""
        return [a for a in (self._latest.alerts if self._latest else ()) if a.cleared_at is None]

    async def action_acknowledge(self) -> None:
        await self._each_open("acknowledge", "Acknowledged")

    async def action_silence(self) -> None:
        await self._each_open("silence", "Silenced", SILENCE_FOR)

    async def action_unsilence(self) -> None:
        await self._each_open("silence", "Lifted the silence of", 0.0)

    async def _each_open(self, how: str, done: str, seconds: float = 0.0) -> None:
        core = self.core.ready()
        if core is None:
            self.notify(STARTING, title="alerts", severity="warning")
            return
        alerts = self.open_alerts()
        if not alerts:
            self.notify("No alert is open.", title="alerts")
            return
        try:
            for alert in alerts:
                if how == "silence":
                    core.silence_alert(alert.name, seconds)
                else:
                    core.acknowledge_alert(alert.name)
        except MedopsError as exc:  # attached to the fleet: the alerts are the members' own
            self.notify(describe_error(exc), title="alerts", severity="warning", timeout=10, markup=False)
            return
        self.notify(f"{done} {len(alerts)} alert{'s' if len(alerts) != 1 else ''}:"
                    f" {', '.join(a.name for a in alerts)}.", title="alerts", markup=False)
        await self.run_action("app.refresh_now")

    def section(self, snapshot: CoreSnapshot) -> Any:
        return (snapshot.alerts, snapshot.tuner)

    def draw(self, snapshot: CoreSnapshot) -> str:
        self.border_title = f"Alerts · {times.zone(snapshot.taken_at)}"
        groups = group_alerts(snapshot.alerts, newest)[:MAX_ALERTS]
        lines = [group_line(group) for group in groups] or ["[dim]no alerts[/]"]
        tuner = snapshot.tuner
        if tuner.changes:
            lines.append("[b]tuner[/]" + ("" if tuner.enabled else " (off)"))
            for change in sorted(tuner.changes, key=lambda c: c.at, reverse=True)[:MAX_TUNER_CHANGES]:
                lines.append(f" {times.clock_time(change.at)} {figures.text(change.knob)}"
                             f" {tuner_figures(change)}"
                             f" [dim]{figures.text(change.reason)}[/]")
        return "\n".join(lines)


def tuner_figures(change: TunerChange) -> str:
    """`old→new`, marked when it was only advice; a knob the operator pinned shows the value kept."""
    if change.skipped:
        return f"{change.old:g} kept (operator's)"
    return f"{change.old:g}→{change.new:g}{'' if change.applied else ' (advice)'}"


def newest(alert: Alert) -> float:
    """When the alert last changed: opened, repeated, escalated or cleared."""
    return max(alert.opened_at, alert.updated_at, alert.cleared_at or 0.0)


def group_line(group: AlertGroup) -> str:
    """One cause: its alert's line when it has one; else `quota_low ×12 on 3 members: newest message`, with how
    many are open, and how often they repeated or reopened (flapped)."""
    if len(group.alerts) == 1:
        return alert_line(group.alerts[0])
    latest = group.alerts[0]
    members = len(group.members)
    on = f" on {members} member{'s' if members != 1 else ''}" if members else ""
    badge = {"critical": "[reverse $error] CRIT [/]", "warning": "[reverse $warning] WARN [/]"}.get(
        group.level, "[dim]cleared[/]")
    still = len(group.open)
    notes = f" [dim]· {still} open · repeated or reopened {group.repeats}×[/]" if group.repeats else \
        f" [dim]· {still} open[/]"
    return (f"{times.clock_time(newest(latest))} {badge} [b]{figures.text(group.cause)} ×{len(group.alerts)}"
            f"{figures.text(on)}[/]: {figures.text(latest.message)}{notes}")


def alert_line(alert: Alert) -> str:
    """`HH:MM:SS CRIT name: message` at its opening; a closed one `HH:MM:SS cleared name: message` at its clearing."""
    notes = (" [dim](acknowledged)[/]" if alert.acknowledged else "") + \
        (f" [dim](silenced until {times.clock_time(alert.silenced_until)})[/]" if alert.silenced_until else "")
    if alert.cleared_at is not None:
        badge = "[dim]cleared[/]"
    elif alert.level == "critical":
        badge = "[reverse $error] CRIT [/]"
    else:
        badge = "[reverse $warning] WARN [/]"
    at = alert.opened_at if alert.cleared_at is None else alert.cleared_at
    return (f"{times.clock_time(at)} {badge} [b]{figures.text(alert.name)}[/]:"
            f" {figures.text(alert.message)}{f' [dim]×{alert.repeats + 1}[/]' if alert.repeats else ''}{notes}")
