"""The resource monitor: one psutil poller for the process, the machine and its cgroup.

Each `SystemMonitor` owns its psutil objects and the previous CPU counters, so
its percentages cover exactly the time since its own last sample: psutil's
module-level `cpu_percent()` keeps one shared "last call" for every caller and
would give each of two callers half the story. It is primed on creation
because a first CPU reading has nothing to compare with. A sample reads a few
/proc and /sys files and costs well under a millisecond, which it measures.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import psutil

from medops.core.clock import Clock
from medops.core.snapshot import SystemSnapshot
from medops.core.watch.cgroups import Cgroup, CgroupLimits
from medops.core.watch.loop_lag import LoopLagStats

# cgroup limits can be changed on a running container (`docker update`); re-read them this often.
LIMITS_EVERY_SAMPLES = 60


def machine_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the host's total."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class SystemMonitor:
    """Samples process and system resources on demand and keeps a history ring."""

    def __init__(self, clock: Clock, data_dir: Path, *, history_seconds: float = 3_600, interval: float = 1.0,
                 cgroup: Cgroup | None = None) -> None:
        self._clock = clock
        self._data_dir = data_dir
        self._cgroup = cgroup if cgroup is not None else Cgroup()
        self._cores = machine_cores()
        self._host_memory = psutil.virtual_memory().total
        self._limits = self._binding_limits()
        self._process = psutil.Process()
        size = max(1, round(history_seconds / interval))
        self._cpu_history: collections.deque[tuple[float, float]] = collections.deque(maxlen=size)
        self._memory_history: collections.deque[tuple[float, float]] = collections.deque(maxlen=size)
        self._samples = 0
        self._latest = SystemSnapshot()
        # Prime every counter the next sample compares against.
        self._process.cpu_percent(None)
        self._last_core_times = psutil.cpu_times(percpu=True)
        self._last_cgroup_cpu = (self._clock.monotonic(), self._cgroup.usage().cpu_usage_seconds)

    @property
    def latest(self) -> SystemSnapshot:
        """The most recent sample (an empty one before the first)."""
        return self._latest

    def sample(self, lag: LoopLagStats | None = None) -> SystemSnapshot:
        """Read every figure now, add it to the history and return it."""
        started = self._clock.monotonic()
        self._samples += 1
        if self._samples % LIMITS_EVERY_SAMPLES == 0:
            self._limits = self._binding_limits()
        limits = self._limits
        usage = self._cgroup.usage()

        with self._process.oneshot():
            process_cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
            threads = self._process.num_threads()
            fds = self._process.num_fds()

        per_core = self._per_core_percent()
        cpu_cores = limits.cpu_limit_cores or float(self._cores)
        if limits.cpu_limit_cores is not None and usage.cpu_usage_seconds is not None:
            cpu_percent = self._cgroup_cpu_percent(usage.cpu_usage_seconds, limits.cpu_limit_cores, started)
            cpu_source = limits.version or "host"
        else:
            cpu_percent = sum(per_core) / len(per_core) if per_core else 0.0
            cpu_source = "host"

        if limits.memory_limit is not None and usage.memory_used is not None:
            memory_limit, memory_used = limits.memory_limit, max(0, usage.memory_used)
            memory_available = max(0, memory_limit - memory_used)
            memory_source = limits.version or "host"
        else:
            host = psutil.virtual_memory()
            memory_limit, memory_available = host.total, host.available
            memory_used = host.total - host.available
            memory_source = "host"
        memory_percent = 100.0 * memory_used / memory_limit if memory_limit else 0.0

        disk = psutil.disk_usage(str(self._data_dir))
        wall = self._clock.wall()
        self._cpu_history.append((wall, cpu_percent))
        self._memory_history.append((wall, memory_percent))
        lag = lag or LoopLagStats()
        self._latest = SystemSnapshot(
            process_cpu=process_cpu, process_cpu_machine=process_cpu / cpu_cores,
            rss_bytes=rss, threads=threads, open_files=fds,
            cpu_per_core=per_core, cpu_limit_cores=cpu_cores, cpu_percent=cpu_percent, cpu_source=cpu_source,
            memory_used=memory_used, memory_limit=memory_limit, memory_percent=memory_percent,
            memory_available=memory_available, memory_source=memory_source,
            disk_free=disk.free, disk_total=disk.total,
            loop_lag_ms=lag.p99_ms, loop_lag_p50_ms=lag.p50_ms, loop_lag_max_ms=lag.max_ms,
            cpu_history=tuple(self._cpu_history), memory_history=tuple(self._memory_history),
            sampled_at=wall, sample_cost_ms=(self._clock.monotonic() - started) * 1000,
        )
        return self._latest

    def _binding_limits(self) -> CgroupLimits:
        """The cgroup's limits, minus any looser than the machine itself (those bind nothing)."""
        limits = self._cgroup.limits()
        memory = limits.memory_limit if limits.memory_limit is not None and \
            limits.memory_limit < self._host_memory else None
        cores = limits.cpu_limit_cores if limits.cpu_limit_cores is not None and \
            limits.cpu_limit_cores < self._cores else None
        return CgroupLimits(version=limits.version, memory_limit=memory, cpu_limit_cores=cores)

    def _per_core_percent(self) -> tuple[float, ...]:
        """Busy percent of each core since the previous sample, from our own counters."""
        now = psutil.cpu_times(percpu=True)
        percents = []
        for before, after in zip(self._last_core_times, now, strict=False):
            total = _total(after) - _total(before)
            idle = _idle(after) - _idle(before)
            percents.append(min(100.0, max(0.0, 100.0 * (total - idle) / total)) if total > 0 else 0.0)
        self._last_core_times = now
        return tuple(percents)

    def _cgroup_cpu_percent(self, used_seconds: float, cores: float, now: float) -> float:
        """Share of the cgroup's CPU quota used since the previous sample."""
        before_at, before_used = self._last_cgroup_cpu
        self._last_cgroup_cpu = (now, used_seconds)
        elapsed = now - before_at
        if before_used is None or elapsed <= 0:
            return 0.0
        return min(100.0, max(0.0, 100.0 * (used_seconds - before_used) / (elapsed * cores)))


def _total(times: Any) -> float:
    # guest time is already counted in user time on Linux; adding it would count it twice.
    values = times._asdict()
    return float(sum(values.values()) - values.get("guest", 0.0) - values.get("guest_nice", 0.0))


def _idle(times: Any) -> float:
    return float(getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0))
