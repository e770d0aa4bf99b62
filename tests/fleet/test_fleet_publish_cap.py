"""A member never publishes a snapshot its readers would skip: over their cap it is cut, and the log says so."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from medops.core.fleet.entries import SNAPSHOT_BYTES
from medops.core.fleet.publish import published
from medops.core.fleet.view import read_fleet
from medops.core.settings.config import ModelLimits
from medops.core.snapshot import Alert, CoreSnapshot
from tests.helpers.console_data import busy_snapshot
from tests.helpers.fleet_helpers import fleet_of, member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=30, rpd=14_400, tpm=6_000, tpd=500_000)
PATIENT = "JaneDoe_MRN5551234"


def huge_snapshot() -> CoreSnapshot:
    """3,000 alerts of 5,000 characters (15 MB as JSON), their text naming a patient."""
    alerts = tuple(Alert(f"cpu{n}", "warning", PATIENT + "x" * 5_000, opened_at=1_000.0 - n) for n in range(3_000))
    return dataclasses.replace(busy_snapshot(), alerts=alerts)


def test_a_snapshot_under_the_cap_is_published_whole() -> None:
    snapshot = busy_snapshot()
    out = published(snapshot)
    assert out.cut == "" and len(out.body) == out.whole_bytes < SNAPSHOT_BYTES


def test_a_snapshot_over_the_cap_is_cut_to_its_newest_items_and_fits() -> None:
    out = published(huge_snapshot())
    assert out.whole_bytes > 10 * SNAPSHOT_BYTES
    assert len(out.body) <= SNAPSHOT_BYTES and out.cut == "lists cut to 50 items"
    assert b'"cpu0"' in out.body and b'"cpu50"' not in out.body  # the newest kept


def test_a_snapshot_no_cut_list_fits_goes_as_its_figures_alone() -> None:
    out = published(huge_snapshot(), cap=4_096)
    assert out.cut == "figures only" and len(out.body) <= 4_096


async def test_a_member_publishes_a_huge_snapshot_cut_so_readers_read_it_and_logs_once_without_patient_data(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha") as quota:
        fleet = fleet_of(quota)
        fleet.snapshot_source = huge_snapshot
        with caplog.at_level(logging.INFO, logger="medops.core.fleet.membership"):
            await fleet.publish()
            await fleet.publish()
        view = await read_fleet(url, "test")
        assert view.skipped == {}  # not skipped by the readers
        assert len(view.snapshots["alpha"].alerts) == 50
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "published with lists cut to 50 items" in warnings[0]
        assert PATIENT not in caplog.text
        fleet.snapshot_source = busy_snapshot
        with caplog.at_level(logging.INFO, logger="medops.core.fleet.membership"):
            await fleet.publish()
        assert "published whole again" in caplog.text
