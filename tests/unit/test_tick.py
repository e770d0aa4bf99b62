"""The core's tick: sample, snapshot, alerts, tuner and ledger on the core clock, robust to failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from medops.core.clock import FakeClock, settle
from medops.core.executors import Executors
from medops.core.fleet.publish import RecordBuffer
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import Alert, CoreSnapshot
from medops.core.watch.tick import CoreTick
from medops.core.watch.tuner import Tuner
from tests.helpers.fake_metrics import FakeMetricsSource

SETTINGS = Settings(monitor_interval=1.0, tuner_interval=10.0, alert_open_after=5.0, io_threads=8,
                    io_threads_min=4, io_threads_max=16)


class RecordingLedger:
    """Keeps what the tick hands it, as engineer D's ledger would store it."""

    def __init__(self) -> None:
        self.metrics: list[CoreSnapshot] = []
        self.alerts: list[Alert] = []
        self.fail_metrics = False

    def record_metrics(self, snapshot: CoreSnapshot) -> None:
        if self.fail_metrics:
            raise OSError("disk full")
        self.metrics.append(snapshot)

    async def record_alert(self, alert: Alert) -> None:  # async on purpose: the tick awaits either kind
        self.alerts.append(alert)


class Harness:
    def __init__(self, clock: FakeClock, data_dir: Path) -> None:
        self.settings = SETTINGS
        self.clock = clock
        self.ledger: RecordingLedger | None = RecordingLedger()
        self.executors = Executors(self.settings, clock)
        self.tick = CoreTick(clock, lambda: self.settings, data_dir, self.executors, self.snapshot,
                             lambda: self.ledger)

    def snapshot(self) -> CoreSnapshot:
        return CoreSnapshot(taken_at=self.clock.wall(), uptime=0.0, pools=self.executors.snapshots(),
                            system=self.tick.system(), alerts=self.tick.alerts.alerts())


@pytest.fixture
async def harness(clock: FakeClock, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(clock, tmp_path)
    h.tick.start()
    await settle()
    yield h
    await h.tick.stop()
    h.executors.shutdown()


async def test_each_interval_samples_and_hands_the_snapshot_to_the_ledger(harness: Harness, clock: FakeClock) -> None:
    await clock.advance(3.0)
    assert harness.tick.ticks == 3
    assert harness.ledger is not None
    assert [s.taken_at for s in harness.ledger.metrics] == [clock.wall() - 2, clock.wall() - 1, clock.wall()]
    system = harness.ledger.metrics[-1].system
    assert system.sampled_at == clock.wall()
    assert system.rss_bytes > 0
    assert [p.name for p in harness.ledger.metrics[-1].pools] == ["cpu", "io"]


async def test_a_failing_step_becomes_an_alert_and_the_tick_goes_on(harness: Harness, clock: FakeClock) -> None:
    assert harness.ledger is not None
    harness.ledger.fail_metrics = True
    await clock.advance(2.0)
    assert [(a.name, a.level) for a in harness.ledger.alerts] == [("internal:ledger", "warning")]
    assert "OSError" in harness.ledger.alerts[0].message
    assert "disk full" not in harness.ledger.alerts[0].message
    harness.ledger.fail_metrics = False
    await clock.advance(10.0)
    assert harness.tick.ticks == 12
    assert [(a.name, a.cleared_at is not None) for a in harness.ledger.alerts] == [
        ("internal:ledger", False), ("internal:ledger", True)]


async def test_announcements_go_to_the_fleets_stream_buffer_as_to_the_ledger(harness: Harness,
                                                                             clock: FakeClock) -> None:
    buffer = RecordBuffer()
    harness.tick.announce_to(buffer)
    assert harness.ledger is not None
    harness.ledger.fail_metrics = True
    await clock.advance(2.0)
    harness.ledger.fail_metrics = False
    await clock.advance(10.0)
    assert list(buffer.take_alerts()) == harness.ledger.alerts  # opened and cleared, as the ledger has them
    assert len(harness.ledger.alerts) == 2


async def test_a_failing_monitor_does_not_stop_the_snapshot(
        harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    assert harness.tick.monitor is not None and harness.ledger is not None

    def broken(*args: object) -> None:
        raise PermissionError("/proc is gone")

    monkeypatch.setattr(harness.tick.monitor, "sample", broken)
    await clock.advance(2.0)
    assert len(harness.ledger.metrics) == 2
    assert [a.name for a in harness.ledger.metrics[-1].alerts] == ["internal:monitor"]


async def test_the_tuner_acts_every_tuner_interval(harness: Harness, clock: FakeClock) -> None:
    source = FakeMetricsSource()  # CPU and memory have room, I/O work is waiting
    harness.tick.tuner = Tuner(clock, harness.settings, source, harness.executors.io)
    await clock.advance(9.0)
    assert harness.executors.io.capacity == 8
    await clock.advance(1.0)
    assert harness.executors.io.capacity == 12
    await clock.advance(9.0)
    assert harness.executors.io.capacity == 12
    await clock.advance(1.0)
    assert harness.executors.io.capacity == 16
    assert [c.new for c in harness.tick.tuner_snapshot().changes] == [16, 12]


async def test_switching_the_tuner_off_in_the_settings_stops_it(harness: Harness, clock: FakeClock) -> None:
    harness.tick.tuner = Tuner(clock, harness.settings, FakeMetricsSource(), harness.executors.io)
    harness.settings = replace(SETTINGS, tuner_enabled=False)
    await clock.advance(30.0)
    assert harness.executors.io.capacity == 8
    assert harness.tick.tuner_snapshot().enabled is False


async def test_the_tuner_snapshot_follows_the_setting_before_the_next_round(
        harness: Harness, clock: FakeClock) -> None:
    assert harness.tick.tuner_snapshot().enabled is True
    harness.settings = replace(SETTINGS, tuner_enabled=False)
    assert harness.tick.tuner_snapshot().enabled is False
    await clock.advance(SETTINGS.monitor_interval)  # a tick, not a tuner round
    assert harness.tick.tuner_snapshot().enabled is False
    harness.settings = SETTINGS
    assert harness.tick.tuner_snapshot().enabled is True


async def test_next_tick_waits_for_the_timers_round_and_gives_its_snapshot(
        harness: Harness, clock: FakeClock) -> None:
    assert harness.tick.system().sampled_at == 0  # primed at start, not yet sampled
    waiter = asyncio.ensure_future(harness.tick.next_tick())
    await clock.advance(SETTINGS.monitor_interval / 2)
    assert not waiter.done()
    await clock.advance(SETTINGS.monitor_interval / 2)
    snapshot = await waiter
    assert snapshot is not None and snapshot.system.sampled_at == clock.wall()
    assert snapshot.system.rss_bytes > 0 and snapshot.system.threads > 0


async def test_stopping_releases_whoever_waits_for_a_tick(harness: Harness) -> None:
    waiter = asyncio.ensure_future(harness.tick.next_tick())
    await settle()
    await harness.tick.stop()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(RuntimeError, match="not running"):
        await harness.tick.next_tick()


async def test_without_a_ledger_the_tick_still_runs(harness: Harness, clock: FakeClock) -> None:
    harness.ledger = None
    await clock.advance(2.0)
    assert harness.tick.ticks == 2
    assert harness.tick.system().sampled_at == clock.wall()


async def test_stop_leaves_nothing_waiting_on_the_clock(harness: Harness, clock: FakeClock) -> None:
    await harness.tick.stop()
    assert clock.sleepers == 0
    await clock.advance(5.0)
    assert harness.tick.ticks == 0


def test_the_core_snapshot_carries_the_cpu_and_io_pools(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(cpu_threads=3, io_threads=7), locations, clock)
    pools = {p.name: p.capacity for p in core.snapshot().pools}
    assert (pools["cpu"], pools["io"]) == (3, 7)
