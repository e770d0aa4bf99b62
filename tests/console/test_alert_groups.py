"""The Alerts pane's rows: one per cause, with how many alerts, on how many members, repeated or reopened how
often; an alert alone keeps its own line."""

from __future__ import annotations

from rich.text import Text

from medops.console.alert_groups import group_alerts
from medops.console.panes.alerts import alert_line, group_line, newest
from medops.core.snapshot import Alert

NOW = 1_767_225_600.0


def quota_low(member: str, window: str, at: float, repeats: int = 0, cleared: bool = False) -> Alert:
    return Alert(f"{member}/quota_low:llama:{window}", "warning", f"llama {window}: 5 of 100 left", at,
                 rule="quota_low", repeats=repeats, updated_at=at, cleared_at=at + 1 if cleared else None)


def test_alerts_of_one_cause_are_one_row_with_a_count_and_the_members_affected() -> None:
    alerts = [quota_low("ward", "rpm", NOW, repeats=2), quota_low("ward", "tpm", NOW + 1),
              quota_low("lab", "rpm", NOW + 2, repeats=1, cleared=True), quota_low("desk", "rpd", NOW + 5),
              Alert("lab/cpu", "critical", "CPU 99%", NOW + 6, rule="cpu", updated_at=NOW + 6)]
    groups = group_alerts(alerts, newest)
    assert [(g.cause, len(g.alerts)) for g in groups] == [("cpu", 1), ("quota_low", 4)]
    row = Text.from_markup(group_line(groups[1])).plain
    assert "quota_low ×4 on 3 members: llama rpd: 5 of 100 left" in row  # the newest one's message
    assert row.endswith("· 3 open · repeated or reopened 3×")
    assert group_line(groups[0]) == alert_line(alerts[4])  # alone: its own line, as before


def test_a_members_own_alerts_group_without_member_names() -> None:
    alerts = [Alert(f"pool_saturated:{p}", "warning", f"pool {p} saturated", NOW, rule="pool_saturated")
              for p in ("io", "cpu")]
    row = Text.from_markup(group_line(group_alerts(alerts, newest)[0])).plain
    assert "pool_saturated ×2: pool" in row and "member" not in row and row.endswith("· 2 open")
