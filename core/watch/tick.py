"""The core's tick: every `monitor_interval`, sample, snapshot, alert, tune and record.

Each step is guarded on its own: a step that raises becomes an "internal"
alert and the tick carries on, because the tick is what reports trouble and
must not be the first casualty of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from medops.core.clock import Clock
from medops.core.executors import Executors
from medops.core.settings.config import Settings
from medops.core.snapshot import Alert, CoreSnapshot, LimitChange, SystemSnapshot, TunerSnapshot
from medops.core.watch.alerts import AlertEngine
from medops.core.watch.loop_lag import STARTUP_GRACE, LoopLagProbe
from medops.core.watch.monitor import SystemMonitor
from medops.core.watch.tuner import MetricsSource, MonitorMetrics, OperatorPins, ResizableCache, Tuner

log = logging.getLogger(__name__)


class Ledger(Protocol):
    """The part of the ledger the tick writes to."""

    def record_metrics(self, snapshot: CoreSnapshot) -> Any:
        """Store one snapshot's figures (may be a coroutine function)."""
        ...

    def record_alert(self, alert: Alert) -> Any:
        """Store one alert announcement (may be a coroutine function)."""
        ...


class AlertRecorder(Protocol):
    """Somewhere else alert announcements go (the fleet's stream); must not block the event loop."""

    def record_alert(self, alert: Alert) -> None:
        ...


class CoreTick:
    """Owns the monitor, loop-lag probe, alert engine and tuner, and runs them on a timer."""

    def __init__(self, clock: Clock, settings: Callable[[], Settings], data_dir: Path, executors: Executors,
                 snapshot: Callable[[], CoreSnapshot], ledger: Callable[[], Ledger | None],
                 tuner_metrics: MetricsSource | None = None) -> None:
        """`tuner_metrics`: where the tuner reads its figures (default: the monitor's latest sample)."""
        self._clock = clock
        self._settings = settings
        self._data_dir = data_dir
        self._snapshot = snapshot
        self._ledger = ledger
        self.executors = executors
        self._tuner_metrics = tuner_metrics
        self.lag = LoopLagProbe(clock)
        self.alerts = AlertEngine(clock)
        self.monitor: SystemMonitor | None = None
        self.tuner: Tuner | None = None
        self.pins = OperatorPins()  # held here, not by the tuner: the operator may pin before start
        self._query_cache: ResizableCache | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: list[asyncio.Future[CoreSnapshot | None]] = []
        self._last_tune: float | None = None
        self._announce_to: list[AlertRecorder] = []
        self.ticks = 0

    def announce_to(self, recorder: AlertRecorder) -> None:
        """Hand every alert announcement to `recorder` as well as to the ledger."""
        self._announce_to.append(recorder)

    def attach_query_cache(self, cache: ResizableCache) -> None:
        """Let the tuner size this cache (the knowledge base's `QueryCache`)."""
        self._query_cache = cache
        if self.tuner is not None:
            self.tuner.query_cache = cache

    def start(self) -> None:
        """Create and prime the monitor, then tick in the running loop; idempotent."""
        if self._task is not None:
            return
        settings = self._settings()
        self.monitor = SystemMonitor(self._clock, self._data_dir, history_seconds=settings.history_seconds,
                                     interval=settings.monitor_interval)
        metrics = self._tuner_metrics or MonitorMetrics(self.monitor, self.executors.io)
        self.tuner = Tuner(self._clock, settings, metrics,
                           self.executors.io, self._query_cache, self.pins)
        self._last_tune = self._clock.monotonic()
        self.lag.start()
        self.lag.excuse(STARTUP_GRACE)  # imports, the first layout, opening files: the start, not a stall
        self._task = asyncio.get_running_loop().create_task(self._run(), name="medops-tick")

    def pin(self, knob: str, size: int, change: LimitChange) -> None:
        """The operator set a knob the tuner sizes: size it now, and the tuner leaves it alone until handed back."""
        if knob == "io_threads":
            self.executors.io.resize(size)
        elif knob == "query_cache_size" and self._query_cache is not None:
            self._query_cache.resize(size)
        self.pins.pin(knob, change.new, change.at, change.by)

    async def stop(self) -> None:
        """Stop ticking and probing."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            future.cancel()  # no round will come for them now
        await self.lag.stop()

    async def next_tick(self) -> CoreSnapshot | None:
        """Wait for the timer's next round (right after start: the monitor's first sample); its snapshot.

        Raises RuntimeError when the tick is not running, since no round would ever come.
        """
        if self._task is None:
            raise RuntimeError("the core tick is not running; start the core before waiting for a tick")
        future: asyncio.Future[CoreSnapshot | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        return await future

    def system(self) -> SystemSnapshot:
        """The latest resource sample (empty before the first tick)."""
        return self.monitor.latest if self.monitor is not None else SystemSnapshot()

    def tuner_snapshot(self) -> TunerSnapshot:
        """The tuner's changes, whether the current settings enable it, and the operator's pinned knobs."""
        if self.tuner is None:
            return TunerSnapshot(pinned=self.pins.knobs())
        return self.tuner.snapshot(self._settings())

    async def _run(self) -> None:
        # Ticks keep to a fixed cadence (the tick's own time does not push the next one later);
        # after a stall the cadence restarts from now instead of firing a burst of late ticks.
        due = self._clock.monotonic()
        while True:
            interval = self._settings().monitor_interval
            due += interval
            await self._clock.sleep(due - self._clock.monotonic())
            if self._clock.monotonic() - due >= interval:
                due = self._clock.monotonic()
            await self.tick()

    async def tick(self) -> CoreSnapshot | None:
        """One round: sample, snapshot, alerts, tuner when due, ledger. Returns the snapshot recorded."""
        self.ticks += 1
        settings = self._settings()
        self._guard("monitor", self._sample)
        if self.tuner is not None and self._last_tune is not None \
                and self._clock.monotonic() - self._last_tune >= settings.tuner_interval:
            self._last_tune = self._clock.monotonic()
            tuner = self.tuner
            self._guard("tuner", lambda: tuner.step(settings))
        snapshot = self._guard("snapshot", self._snapshot)
        announced: list[Alert] = []
        if snapshot is not None:
            announced = self._guard("alerts", lambda: self.alerts.evaluate(snapshot, settings)) or []
            snapshot = dataclasses.replace(snapshot, alerts=self.alerts.alerts())
        for recorder in self._announce_to:
            for alert in announced:
                self._guard("announce", functools.partial(recorder.record_alert, alert))
        ledger = self._ledger()
        if ledger is not None:
            for alert in announced:
                await self._guard_async("ledger", ledger.record_alert, alert)
            if snapshot is not None:
                await self._guard_async("ledger", ledger.record_metrics, snapshot)
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():  # a waiter may have been cancelled meanwhile
                future.set_result(snapshot)
        return snapshot

    def _sample(self) -> None:
        if self.monitor is not None:
            self.monitor.sample(self.lag.stats())

    def _guard(self, part: str, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except Exception as exc:
            self._failed(part, exc)
            return None

    async def _guard_async(self, part: str, step: Callable[..., Any], *args: Any) -> None:
        try:
            result = step(*args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self._failed(part, exc)

    def _failed(self, part: str, exc: Exception) -> None:
        log.warning("core tick: %s failed (%s)", part, type(exc).__name__, exc_info=exc)
        self.alerts.note_failure(part, exc)
