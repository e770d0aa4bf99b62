"""Alerts by cause: one group per rule, with how many alerts, on which members, repeated or reopened how often.

On an attached view an alert's name is "member/rule:subject"; on a member's own
console it is "rule:subject". The Alerts pane draws one row per group; History
keeps every announcement as it was made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from medops.core.snapshot import Alert


def member_of(alert: Alert) -> str:
    """The member an attached view's alert came from ("" on a member's own console)."""
    head, slash, _ = alert.name.partition("/")
    return head if slash else ""


def cause_of(alert: Alert) -> str:
    """The rule that raised it: quota_low, cpu, burn_rate..."""
    return alert.rule or alert.name.partition("/")[2 if "/" in alert.name else 0].partition(":")[0]


@dataclass(frozen=True)
class AlertGroup:
    """Every alert of one cause, newest first."""

    cause: str
    alerts: tuple[Alert, ...]

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(sorted({m for m in map(member_of, self.alerts) if m}))

    @property
    def open(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.cleared_at is None)

    @property
    def repeats(self) -> int:
        """Times its alerts were announced again while open or reopened soon after clearing (flaps)."""
        return sum(a.repeats for a in self.alerts)

    @property
    def level(self) -> str:
        """The worst level among the open ones ("cleared" when none is open)."""
        levels = {a.level for a in self.open}
        return "critical" if "critical" in levels else "warning" if levels else "cleared"


def group_alerts(alerts: Iterable[Alert], newest: Callable[[Alert], float]) -> list[AlertGroup]:
    """One group per cause, ordered by their newest alert (`newest` gives an alert's last change)."""
    by_cause: dict[str, list[Alert]] = {}
    for alert in sorted(alerts, key=newest, reverse=True):
        by_cause.setdefault(cause_of(alert), []).append(alert)
    return [AlertGroup(cause, tuple(group)) for cause, group in by_cause.items()]
