"""Alerts pane: open and recent alerts newest first, then what the tuner changed."""

from __future__ import annotations

from typing import Any

from medops.console import figures, times
from medops.console.panes.pane import SnapshotPane
from medops.core.snapshot import Alert, CoreSnapshot, TunerChange

MAX_ALERTS = 20
MAX_TUNER_CHANGES = 5


class AlertsPane(SnapshotPane):
    """Alerts newest first; critical ones stand out even without colour."""

    def __init__(self, *, id: str | None = "alerts") -> None:
        super().__init__("Alerts", id=id)

    def section(self, snapshot: CoreSnapshot) -> Any:
        return (snapshot.alerts, snapshot.tuner)

    def draw(self, snapshot: CoreSnapshot) -> str:
        self.border_title = f"Alerts · {times.zone(snapshot.taken_at)}"
        alerts = sorted(snapshot.alerts, key=newest, reverse=True)[:MAX_ALERTS]
        lines = [alert_line(alert) for alert in alerts] or ["[dim]no alerts[/]"]
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


def alert_line(alert: Alert) -> str:
    """`HH:MM:SS CRIT name: message`, with `cleared` for closed ones."""
    if alert.cleared_at is not None:
        badge = "[dim]cleared[/]"
    elif alert.level == "critical":
        badge = "[reverse $error] CRIT [/]"
    else:
        badge = "[reverse $warning] WARN [/]"
    return (f"{times.clock_time(alert.opened_at)} {badge} [b]{figures.text(alert.name)}[/]:"
            f" {figures.text(alert.message)}{f' [dim]×{alert.repeats + 1}[/]' if alert.repeats else ''}")
