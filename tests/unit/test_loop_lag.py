"""Event-loop lag: a probe that notices when the loop is blocked."""

from __future__ import annotations

import asyncio
import time

from medops.core.clock import FakeClock, SystemClock, settle
from medops.core.watch.loop_lag import LoopLagProbe


async def test_a_blocked_loop_shows_up_as_lag() -> None:
    probe = LoopLagProbe(SystemClock(), interval=0.01, window=60.0)
    probe.start()
    await asyncio.sleep(0.05)  # the probe is now asleep, due within 10 ms
    time.sleep(0.3)  # noqa: ASYNC251 -- blocking the loop on purpose, as a blocking call on it would
    await asyncio.sleep(0.05)
    await probe.stop()
    stats = probe.stats()
    # The probe due 10 ms into the block woke at its end at the earliest.
    assert stats.max_ms >= 280
    assert stats.samples >= 2


async def test_figures_cover_only_the_recent_window(clock: FakeClock) -> None:
    probe = LoopLagProbe(clock, window=10.0)
    for lag in (0.001, 0.002, 0.003, 0.500):
        probe.record(lag)
    stats = probe.stats()
    assert (stats.samples, stats.max_ms) == (4, 500.0)
    assert stats.p50_ms == 3.0  # nearest rank of four
    await clock.advance(11.0)
    probe.record(0.004)
    stats = probe.stats()
    assert (stats.samples, stats.p50_ms, stats.p99_ms, stats.max_ms) == (1, 4.0, 4.0, 4.0)


async def test_the_probe_runs_on_the_core_clock(clock: FakeClock) -> None:
    probe = LoopLagProbe(clock, interval=0.25, window=10.0)
    probe.start()
    await settle()
    await clock.advance(1.0)
    stats = probe.stats()
    await probe.stop()
    assert stats.samples == 4
    assert stats.max_ms == 0.0  # a fake clock never runs late
    assert clock.sleepers == 0


def test_no_samples_means_no_lag(clock: FakeClock) -> None:
    stats = LoopLagProbe(clock).stats()
    assert (stats.samples, stats.max_ms) == (0, 0.0)


async def test_excused_wake_ups_are_left_out(clock: FakeClock) -> None:
    """A console laying its screen out after a resize holds the loop: that is not the core stalling."""
    probe = LoopLagProbe(clock)
    probe.excuse(2.0)
    probe.record(1.008)  # the resize's second
    assert probe.stats().samples == 0 and probe.excused == 1
    await clock.advance(2.5)
    probe.record(0.300)  # after the excuse: counted
    assert probe.stats().max_ms == 300.0
