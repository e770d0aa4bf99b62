"""A gateway member's section of its published snapshot, as the Fleet tab and a member's view read it."""

from __future__ import annotations

import orjson

from medops.console.fleet_table import role_text
from medops.console.panes.member_screen import gateway_text
from medops.core.fleet.entries import Description
from medops.core.fleet.view import MemberState, _row
from medops.core.snapshot import (
    CoreSnapshot,
    GatewayKeyStats,
    GatewaySnapshot,
    snapshot_from_dict,
    snapshot_to_dict,
)

SECTION = GatewaySnapshot("http://127.0.0.1:8787", clients=7, in_flight=3, requests=120, unauthorized=2,
                          keys=(GatewayKeyStats("[bold]triage-bot", "triage", 100, 2, 40, 5, 1.25),))


def published() -> dict[str, object]:
    return orjson.loads(orjson.dumps(snapshot_to_dict(CoreSnapshot(taken_at=1.0, uptime=1.0, gateway=SECTION))))


def test_the_gateway_section_survives_publishing() -> None:
    assert snapshot_from_dict(published()).gateway == SECTION
    assert snapshot_from_dict(snapshot_to_dict(CoreSnapshot(taken_at=1.0, uptime=1.0))).gateway is None


def test_the_fleet_tab_lists_a_gateway_with_its_clients_and_requests_in_flight() -> None:
    row = _row("gw-1", Description(role="gateway"), MemberState.ALIVE, 5.0, snapshot_from_dict(published()))
    assert (row.gateway_clients, row.gateway_in_flight) == (7, 3)
    assert role_text(row).plain == "gateway 7 clients, 3 in flight"
    other = _row("console-1", Description(role="console"), MemberState.ALIVE, 5.0, None)
    assert other.gateway_clients is None and role_text(other).plain == "console"


def test_a_members_view_shows_each_keys_requests_queued_deadline_refusals_and_p50_wait_as_plain_text() -> None:
    lines = gateway_text(SECTION).plain.splitlines()
    assert "7 clients, 3 in flight" in lines[0]
    assert lines[2].split() == ["[bold]triage-bot", "triage", "100", "40", "5", "1.25s"]  # the name as sent, no markup
