"""`snapshot_from_dict`: a fleet member's published snapshot read back as a `CoreSnapshot`."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from medops.core.fleet.publish import published
from medops.core.snapshot import CoreSnapshot, snapshot_from_dict, snapshot_to_dict
from tests.helpers.console_data import busy_snapshot


def test_busy_snapshot_round_trips_through_its_dict() -> None:
    snapshot = busy_snapshot()
    assert snapshot_from_dict(snapshot_to_dict(snapshot)) == snapshot


def test_a_published_snapshot_round_trips_through_json() -> None:
    """What a member publishes (JSON, names and histories left home) reads back equal to what it sent."""
    snapshot = busy_snapshot()
    back = snapshot_from_dict(orjson.loads(published(snapshot).body))
    assert back.quota == snapshot.quota
    assert back.scheduler == snapshot.scheduler
    assert back.alerts == snapshot.alerts
    assert back.system.cpu_history == ()
    assert all(job.name == "" for job in back.documents.recent)
    assert isinstance(back.system.loop_lag_ms, float)


def test_missing_fields_keep_their_defaults() -> None:
    assert snapshot_from_dict({"taken_at": 1.0, "uptime": 2}) == CoreSnapshot(1.0, 2.0)


def test_not_a_snapshot_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="CoreSnapshot"):
        snapshot_from_dict({"uptime": 2})
    with pytest.raises(ValueError, match="QuotaSnapshot"):
        snapshot_from_dict({"taken_at": 1.0, "uptime": 2, "quota": [1]})


def test_every_field_type_is_covered() -> None:
    """A field added later with a type `_build` cannot read fails here, not on a fleet member's snapshot."""
    snapshot = busy_snapshot()
    for field in dataclasses.fields(CoreSnapshot):
        assert snapshot_from_dict({"taken_at": 0, "uptime": 0, field.name: snapshot_to_dict(snapshot)[field.name]})
