"""The auto-tuner: the reference design's rules, applied to the real pools and caches.

Rules (from the reference design, within the config's bounds):
- I/O threads grow by 4 when CPU < 50% and memory < 60% (and work is waiting:
  idle threads help nobody), and shrink by 4 when CPU > 80%;
- caches follow available memory: above 1000 MiB the query cache doubles its
  configured size, below 500 MiB it halves it. Case slots live in a fixed
  shared-memory segment that cannot change while running, so for them the
  tuner gives advice (recorded, not applied) instead of pretending.
Every decision is recorded with its reason. Decisions read a `MetricsSource`,
so tests drive the tuner with fixed figures.

The operator wins: a knob set with `set_limit` is pinned (`OperatorPins`) and the
tuner leaves it alone, saying so once in its history, until it is handed back.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from medops.core.clock import Clock
from medops.core.executors import ResizablePool
from medops.core.settings.config import MIB, Settings
from medops.core.snapshot import PoolSnapshot, TunerChange, TunerSnapshot
from medops.core.watch.monitor import SystemMonitor

IO_STEP = 4
GROW_BELOW_CPU = 50.0
GROW_BELOW_MEMORY = 60.0
SHRINK_ABOVE_CPU = 80.0
PLENTY_MEMORY = 1000 * MIB
SCARCE_MEMORY = 500 * MIB
MAX_CHANGES = 100  # changes kept for the snapshot


@dataclass(frozen=True)
class TunerMetrics:
    """What the tuner decides on."""

    cpu_percent: float  # of the machine or the cgroup quota
    memory_percent: float
    memory_available: int  # bytes
    io_pool: PoolSnapshot


class MetricsSource(Protocol):
    """Where the tuner reads its figures (the monitor in the core, fixed figures in tests)."""

    def tuner_metrics(self) -> TunerMetrics | None:
        """Current figures, or None before the first sample."""
        ...


class MonitorMetrics:
    """The core's metrics source: the monitor's latest sample and the I/O pool's state."""

    def __init__(self, monitor: SystemMonitor, io_pool: ResizablePool) -> None:
        self._monitor = monitor
        self._io_pool = io_pool

    def tuner_metrics(self) -> TunerMetrics | None:
        latest = self._monitor.latest
        if not latest.sampled_at:
            return None
        return TunerMetrics(cpu_percent=latest.cpu_percent, memory_percent=latest.memory_percent,
                            memory_available=latest.memory_available, io_pool=self._io_pool.snapshot())


class ResizableThreads(Protocol):
    """A pool the tuner can resize (`medops.core.executors.ResizablePool`)."""

    @property
    def capacity(self) -> int:
        """Jobs allowed at once."""
        ...

    def resize(self, size: int) -> None:
        """Allow `size` jobs at once."""
        ...


class ResizableCache(Protocol):
    """A cache the tuner can resize (the knowledge base's `QueryCache`)."""

    @property
    def capacity(self) -> int:
        """Entries it keeps now (0 when caching is off)."""
        ...

    def resize(self, capacity: int) -> None:
        """Keep at most `capacity` entries."""
        ...


@dataclass(frozen=True)
class Pin:
    """One knob the operator set: to what (as shown), when (wall time) and by whom."""

    knob: str
    value: str
    at: float
    by: str


class OperatorPins:
    """Knobs the operator set, which the tuner leaves alone until they are handed back."""

    def __init__(self) -> None:
        self._pins: dict[str, Pin] = {}

    def pin(self, knob: str, value: str, at: float, by: str) -> None:
        """The operator set `knob`: the tuner must not touch it."""
        self._pins[knob] = Pin(knob=knob, value=value, at=at, by=by)

    def unpin(self, knob: str) -> bool:
        """Hand `knob` back to the tuner; False if it was not pinned."""
        return self._pins.pop(knob, None) is not None

    def clear(self) -> None:
        """Hand every knob back (the operator switched the tuner back on)."""
        self._pins.clear()

    def get(self, knob: str) -> Pin | None:
        return self._pins.get(knob)

    def knobs(self) -> tuple[str, ...]:
        """The pinned knobs, sorted."""
        return tuple(sorted(self._pins))


class Tuner:
    """Applies the tuning rules to the I/O pool and the query cache, recording each change."""

    def __init__(self, clock: Clock, settings: Settings, metrics: MetricsSource, io_pool: ResizableThreads,
                 query_cache: ResizableCache | None = None, pins: OperatorPins | None = None) -> None:
        self._clock = clock
        self.metrics = metrics  # public so tests can feed fixed figures to a core's own tuner
        self._io_pool = io_pool
        self.query_cache = query_cache
        self.pins = pins if pins is not None else OperatorPins()
        self._case_advice = settings.max_cases_in_memory
        self._changes: collections.deque[TunerChange] = collections.deque(maxlen=MAX_CHANGES)
        self._announced: dict[str, Pin] = {}  # the pin each knob's "left alone" record was made for

    def step(self, settings: Settings) -> list[TunerChange]:
        """One decision round with the current settings; returns what it changed, advised or left alone."""
        if not settings.tuner_enabled:
            return []
        metrics = self.metrics.tuner_metrics()
        if metrics is None:
            return []
        io_pin, cache_pin = self.pins.get("io_threads"), self.pins.get("query_cache_size")
        io = self._left_alone(io_pin, self._io_pool.capacity) if io_pin else self._tune_io(metrics, settings)
        if cache_pin is None:
            cache = self._tune_query_cache(metrics, settings)
        else:
            cache = self._left_alone(cache_pin, self.query_cache.capacity if self.query_cache is not None else 0)
        made = [c for c in (io, cache, self._advise_case_slots(metrics, settings)) if c is not None]
        for change in made:
            self._changes.appendleft(change)
        return made

    def snapshot(self, settings: Settings) -> TunerSnapshot:
        """Whether the current settings let the tuner act, its changes newest first, and the pinned knobs."""
        # From the settings, not the last round: a switch takes effect (and shows) at once.
        return TunerSnapshot(enabled=settings.tuner_enabled, changes=tuple(self._changes),
                             pinned=self.pins.knobs())

    def _left_alone(self, pin: Pin, current: int) -> TunerChange | None:
        """The one record that a pinned knob is skipped, made on the first round after each operator set."""
        if self._announced.get(pin.knob) is pin:
            return None
        self._announced[pin.knob] = pin
        since = datetime.fromtimestamp(pin.at, tz=UTC).strftime("%H:%M:%S UTC")
        return TunerChange(at=self._clock.wall(), knob=pin.knob, old=current, new=current, applied=False,
                           skipped=True,
                           reason=f"set by the operator ({pin.by}) to {pin.value} at {since}: left alone until "
                                  f"handed back (value auto in the Limits form, or tuner_enabled off then on)")

    def _tune_io(self, m: TunerMetrics, settings: Settings) -> TunerChange | None:
        old = self._io_pool.capacity
        low, high = settings.io_threads_min, settings.io_threads_max
        if m.cpu_percent > SHRINK_ABOVE_CPU:
            new = max(min(old - IO_STEP, high), low)
            reason = (f"CPU {m.cpu_percent:.0f}% > {SHRINK_ABOVE_CPU:g}%: fewer I/O threads "
                      f"(floor io_threads_min = {low})")
        elif m.cpu_percent < GROW_BELOW_CPU and m.memory_percent < GROW_BELOW_MEMORY and m.io_pool.queued > 0:
            new = min(max(old + IO_STEP, low), high)
            reason = (f"CPU {m.cpu_percent:.0f}% < {GROW_BELOW_CPU:g}% and memory {m.memory_percent:.0f}% < "
                      f"{GROW_BELOW_MEMORY:g}% with {m.io_pool.queued} jobs waiting: more I/O threads "
                      f"(ceiling io_threads_max = {high})")
        else:
            return None
        if new == old:
            return None
        self._io_pool.resize(new)
        return TunerChange(at=self._clock.wall(), knob="io_threads", old=old, new=new, reason=reason)

    def _tune_query_cache(self, m: TunerMetrics, settings: Settings) -> TunerChange | None:
        if self.query_cache is None or settings.query_cache_size <= 0:
            return None
        # The cache's own capacity, not the size last set here: the operator may have resized it
        # since, and a cache switched off (zero TTL) stays at 0 whatever size it is given.
        old = self.query_cache.capacity
        target = _by_memory(m.memory_available, settings.query_cache_size)
        if old <= 0 or target is None or target == old:
            return None
        self.query_cache.resize(target)
        return TunerChange(at=self._clock.wall(), knob="query_cache_size", old=old, new=target,
                           reason=f"{_memory_reason(m.memory_available)}: query cache {old:,} -> {target:,} entries "
                                  f"(configured {settings.query_cache_size:,})")

    def _advise_case_slots(self, m: TunerMetrics, settings: Settings) -> TunerChange | None:
        target = _by_memory(m.memory_available, settings.max_cases_in_memory)
        if target is None or target == self._case_advice:
            return None
        self._case_advice = target
        current = settings.max_cases_in_memory
        # Same slot size: case_memory_mb scales with the slot count.
        megabytes = max(1, settings.case_memory_mb * target // current)
        return TunerChange(at=self._clock.wall(), knob="max_cases_in_memory", old=current, new=target,
                           applied=False,
                           reason=f"{_memory_reason(m.memory_available)} would suit {target:,} case slots, but case "
                                  f"memory is a fixed shared-memory segment that cannot be resized while running: "
                                  f"not applied; set max_cases_in_memory = {target} and case_memory_mb = "
                                  f"{megabytes} and restart to use it")


def _by_memory(available: int, configured: int) -> int | None:
    """Double the configured size with plenty of memory, halve it when scarce, else no opinion."""
    if available > PLENTY_MEMORY:
        return configured * 2
    if available < SCARCE_MEMORY:
        return max(1, configured // 2)
    return None


def _memory_reason(available: int) -> str:
    if available > PLENTY_MEMORY:
        return f"{available // MIB:,} MiB available > {PLENTY_MEMORY // MIB:,} MiB"
    return f"{available // MIB:,} MiB available < {SCARCE_MEMORY // MIB:,} MiB"
