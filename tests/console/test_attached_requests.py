"""The attached view's Requests tab: every member's published rows, each labelled with its member, bounded."""

from __future__ import annotations

from medops.console.request_table import who
from medops.core.fleet.attached import fleet_snapshot
from medops.core.groq.scheduler import REQUEST_ROWS
from medops.core.snapshot import StoreSnapshot
from tests.helpers.published_rows import published, row, view

STORE = StoreSnapshot("redis://store", "", "up", None, 0.0, 0.0, 2, 0, 0.0, 0, attached=True)


def test_every_members_rows_are_listed_with_their_member_in_flight_first_then_oldest() -> None:
    built = fleet_snapshot(view({"ward": published(row("w1", 5.0), row("w2", 50.0, "sending")),
                                 "lab": published(row("l1", 20.0), held=7)}), STORE)
    rows = built.scheduler.requests
    assert [(r.member, r.request_id) for r in rows] == [("ward", "w2"), ("lab", "l1"), ("ward", "w1")]
    assert built.scheduler.requests_held == 9
    assert who(rows[1]) == "lab/triage"


def test_the_merged_rows_are_bounded() -> None:
    many = tuple(row(f"r{i}", float(i)) for i in range(REQUEST_ROWS))
    built = fleet_snapshot(view({"ward": published(*many), "lab": published(*many)}), STORE)
    assert len(built.scheduler.requests) == REQUEST_ROWS
