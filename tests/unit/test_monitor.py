"""The resource monitor: real psutil readings, cgroup-aware limits, history ring."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from medops.core.clock import FakeClock, SystemClock
from medops.core.watch.cgroups import Cgroup
from medops.core.watch.loop_lag import LoopLagStats
from medops.core.watch.monitor import SystemMonitor
from tests.helpers.cgroup_files import GIB, V2_LIMITED, proc, tree


def limited_cgroup(tmp_path: Path) -> tuple[Cgroup, Path]:
    root = tree(tmp_path / "fs", V2_LIMITED)
    return Cgroup(root, proc(tmp_path, "0::/app.slice\n")), root


def unlimited_cgroup(tmp_path: Path) -> Cgroup:
    root = tmp_path / "no-cgroup"
    root.mkdir()
    return Cgroup(root, tmp_path / "missing")


def test_a_sample_reads_the_process_and_the_host(tmp_path: Path, clock: FakeClock) -> None:
    monitor = SystemMonitor(clock, tmp_path, cgroup=unlimited_cgroup(tmp_path))
    sample = monitor.sample()
    me = psutil.Process()
    assert sample.rss_bytes > 0
    assert sample.threads >= 1
    assert abs(sample.open_files - me.num_fds()) <= 2  # descriptors, give or take the test runner's
    assert len(sample.cpu_per_core) == psutil.cpu_count()
    assert sample.memory_source == sample.cpu_source == "host"
    assert sample.memory_limit == psutil.virtual_memory().total
    assert 0 < sample.memory_percent < 100
    assert 0 < sample.disk_free <= sample.disk_total
    assert sample.sampled_at == clock.wall()
    assert monitor.latest is sample


def test_the_first_sample_is_meaningful_because_the_monitor_is_primed(tmp_path: Path) -> None:
    monitor = SystemMonitor(SystemClock(), tmp_path, cgroup=unlimited_cgroup(tmp_path))
    spent = psutil.Process().cpu_times()
    while sum(psutil.Process().cpu_times()[:2]) - sum(spent[:2]) < 0.05:
        pass  # burn CPU so the process has something to show
    assert monitor.sample().process_cpu > 0  # unprimed, psutil's first reading is always 0.0


async def test_limits_and_cpu_share_come_from_a_limiting_cgroup(tmp_path: Path, clock: FakeClock) -> None:
    cgroup, root = limited_cgroup(tmp_path)
    monitor = SystemMonitor(clock, tmp_path, cgroup=cgroup)  # primed at usage_usec 4.5 s
    (root / "app.slice/cpu.stat").write_text("usage_usec 5250000\n")
    await clock.advance(1.0)  # one second later the cgroup has used 0.75 s of its 1.5 cores
    sample = monitor.sample()
    assert (sample.memory_source, sample.cpu_source) == ("cgroup v2", "cgroup v2")
    assert sample.memory_limit == 2 * GIB
    assert sample.memory_used == GIB - 100_000_000
    assert sample.memory_available == 2 * GIB - sample.memory_used
    assert sample.memory_percent == 100 * sample.memory_used / (2 * GIB)
    assert sample.cpu_limit_cores == 1.5
    assert sample.cpu_percent == 50.0
    assert sample.process_cpu_machine == sample.process_cpu / 1.5


def test_a_cgroup_limit_looser_than_the_machine_binds_nothing(tmp_path: Path, clock: FakeClock) -> None:
    host_memory = psutil.virtual_memory().total
    root = tree(tmp_path / "fs", {"cgroup.controllers": "cpu memory", "memory.max": str(host_memory * 4),
                                  "cpu.max": f"{1000 * 100000} 100000", "memory.current": "1000",
                                  "cpu.stat": "usage_usec 1"})
    sample = SystemMonitor(clock, tmp_path, cgroup=Cgroup(root, proc(tmp_path, "0::/\n"))).sample()
    assert (sample.memory_source, sample.cpu_source) == ("host", "host")
    assert sample.memory_limit == host_memory


def test_without_a_cgroup_limit_the_machine_s_cores_divide_process_cpu(tmp_path: Path, clock: FakeClock) -> None:
    sample = SystemMonitor(clock, tmp_path, cgroup=unlimited_cgroup(tmp_path)).sample()
    assert sample.cpu_limit_cores == len(os.sched_getaffinity(0))


async def test_history_keeps_the_configured_stretch(tmp_path: Path, clock: FakeClock) -> None:
    monitor = SystemMonitor(clock, tmp_path, history_seconds=60, interval=2.0, cgroup=unlimited_cgroup(tmp_path))
    for _ in range(40):
        await clock.advance(2.0)
        monitor.sample()
    history = monitor.latest.cpu_history
    assert len(history) == len(monitor.latest.memory_history) == 30
    assert history[-1][0] == clock.wall()
    assert history[0][0] == clock.wall() - 29 * 2.0


def test_loop_lag_figures_are_carried_into_the_sample(tmp_path: Path, clock: FakeClock) -> None:
    monitor = SystemMonitor(clock, tmp_path, cgroup=unlimited_cgroup(tmp_path))
    sample = monitor.sample(LoopLagStats(p50_ms=1.0, p99_ms=20.0, max_ms=250.0, samples=50))
    assert (sample.loop_lag_p50_ms, sample.loop_lag_ms, sample.loop_lag_max_ms) == (1.0, 20.0, 250.0)


def test_the_sample_measures_its_own_cost(tmp_path: Path) -> None:
    monitor = SystemMonitor(SystemClock(), tmp_path, cgroup=unlimited_cgroup(tmp_path))
    assert monitor.sample().sample_cost_ms > 0
