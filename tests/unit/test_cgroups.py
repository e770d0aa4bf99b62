"""Container limits read from cgroup v1 and v2 fixture trees."""

from __future__ import annotations

from pathlib import Path

from medops.core.watch.cgroups import Cgroup
from tests.helpers.cgroup_files import GIB, V2_LIMITED, proc, tree


def test_v2_limits_come_from_the_process_s_own_cgroup(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs", V2_LIMITED)
    cgroup = Cgroup(root, proc(tmp_path, "0::/app.slice\n"))
    limits = cgroup.limits()
    assert (limits.version, limits.memory_limit, limits.cpu_limit_cores) == ("cgroup v2", 2 * GIB, 1.5)
    usage = cgroup.usage()
    assert usage.memory_used == GIB - 100_000_000  # inactive page cache is reclaimable: left out
    assert usage.cpu_usage_seconds == 4.5


def test_v2_takes_the_tightest_limit_of_any_ancestor(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs", {
        **V2_LIMITED,
        "app.slice/worker/memory.max": "max",
        "app.slice/worker/cpu.max": "400000 100000",
    })
    limits = Cgroup(root, proc(tmp_path, "0::/app.slice/worker\n")).limits()
    assert limits.memory_limit == 2 * GIB  # the parent's
    assert limits.cpu_limit_cores == 1.5  # the parent's 1.5 beats the child's 4


def test_v2_unlimited_reports_no_limits(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs", {"cgroup.controllers": "cpu memory", "memory.max": "max",
                                  "cpu.max": "max 100000", "memory.current": "12345"})
    limits = Cgroup(root, proc(tmp_path, "0::/\n")).limits()
    assert (limits.version, limits.memory_limit, limits.cpu_limit_cores) == ("cgroup v2", None, None)


def test_v2_inside_a_container_finds_its_cgroup_mounted_at_the_root(tmp_path: Path) -> None:
    # The container sees its own cgroup as /sys/fs/cgroup while /proc says /docker/<id>.
    root = tree(tmp_path / "fs", {"cgroup.controllers": "cpu memory", "memory.max": str(GIB),
                                  "cpu.max": "50000 100000", "memory.current": "1000"})
    cgroup = Cgroup(root, proc(tmp_path, "0::/docker/3f2a9c\n"))
    assert cgroup.limits().memory_limit == GIB
    assert cgroup.limits().cpu_limit_cores == 0.5
    assert cgroup.usage().memory_used == 1000


V1_LIMITED = {
    "memory/memory.limit_in_bytes": str(9223372036854771712),
    "memory/docker/ab12/memory.limit_in_bytes": str(512 * 1024**2),
    "memory/docker/ab12/memory.usage_in_bytes": str(300 * 1024**2),
    "memory/docker/ab12/memory.stat": "cache 10\nrss 20\ntotal_inactive_file 104857600",
    "cpu,cpuacct/cpu.cfs_quota_us": "-1",
    "cpu,cpuacct/cpu.cfs_period_us": "100000",
    "cpu,cpuacct/docker/ab12/cpu.cfs_quota_us": "200000",
    "cpu,cpuacct/docker/ab12/cpu.cfs_period_us": "100000",
    "cpu,cpuacct/docker/ab12/cpuacct.usage": "2500000000",
}
V1_PROC = "12:memory:/docker/ab12\n4:cpu,cpuacct:/docker/ab12\n1:name=systemd:/docker/ab12\n"


def test_v1_limits_per_controller(tmp_path: Path) -> None:
    cgroup = Cgroup(tree(tmp_path / "fs", V1_LIMITED), proc(tmp_path, V1_PROC))
    limits = cgroup.limits()
    assert (limits.version, limits.memory_limit, limits.cpu_limit_cores) == ("cgroup v1", 512 * 1024**2, 2.0)
    usage = cgroup.usage()
    assert usage.memory_used == 200 * 1024**2
    assert usage.cpu_usage_seconds == 2.5


def test_v1_unlimited_reports_no_limits(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs", {
        "memory/memory.limit_in_bytes": str(9223372036854771712),
        "memory/memory.usage_in_bytes": "4096",
        "cpu/cpu.cfs_quota_us": "-1",
        "cpu/cpu.cfs_period_us": "100000",
        "cpuacct/cpuacct.usage": "1000",
    })
    cgroup = Cgroup(root, proc(tmp_path, "5:memory:/\n3:cpu:/\n2:cpuacct:/\n"))
    limits = cgroup.limits()
    assert (limits.version, limits.memory_limit, limits.cpu_limit_cores) == ("cgroup v1", None, None)
    assert cgroup.usage().cpu_usage_seconds == 1e-6


def test_no_cgroup_at_all_means_the_host_s_figures(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    cgroup = Cgroup(root, tmp_path / "missing")
    assert cgroup.limits().version == ""
    assert cgroup.usage().memory_used is None


def test_unreadable_or_garbled_files_count_as_no_limit(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs", {"cgroup.controllers": "cpu memory", "memory.max": "lots",
                                  "cpu.max": "100000"})
    limits = Cgroup(root, proc(tmp_path, "0::/\n")).limits()
    assert (limits.memory_limit, limits.cpu_limit_cores) == (None, None)
