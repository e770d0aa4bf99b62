"""Request rows as members publish them, and a fleet reading of those members (no store): for the attached
view's and the CLI's tests of rows across members."""

from __future__ import annotations

from medops.core.fleet.view import FleetView, MemberRow, MemberState
from medops.core.snapshot import CoreSnapshot, RequestRow, SchedulerSnapshot


def row(request_id: str, age: float, state: str = "waiting") -> RequestRow:
    return RequestRow(request_id, "triage", "", "normal", "normal", "critical", "m", 100, age, None,
                      state, "intake paused")  # type: ignore[arg-type]


def published(*rows: RequestRow, held: int | None = None) -> CoreSnapshot:
    return CoreSnapshot(1.0, 0.0, scheduler=SchedulerSnapshot(requests=rows, requests_held=held or len(rows)))


def member(name: str) -> MemberRow:
    return MemberRow(name, "vm", 1, "core", "0", 0.0, 0.0, 0.0, MemberState.ALIVE, {}, 0, 0, 0, 0, {}, 0.0, 0.0, 0.0, 0,
                     False)


def view(snapshots: dict[str, CoreSnapshot]) -> FleetView:
    return FleetView("redis://store", 1.0, tuple(member(n) for n in snapshots), (), snapshots)
