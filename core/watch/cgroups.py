"""Container limits: what the cgroup (v2 or v1) allows this process, read from its files.

In a container the host's memory and CPU count are not what the process may
use; the cgroup's limits are. The root folder and the process's cgroup file
are parameters so tests read fixture trees instead of /sys/fs/cgroup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 writes a page-rounded 2**63-1 for "no limit"; anything this large means unlimited.
V1_UNLIMITED = 1 << 60

N = TypeVar("N", int, float)

CgroupVersion = Literal["cgroup v2", "cgroup v1", ""]
"""Which cgroup interface the process sits in ("": none found)."""


@dataclass(frozen=True)
class CgroupLimits:
    """The limits found, None where the cgroup sets none."""

    version: CgroupVersion
    memory_limit: int | None = None  # bytes
    cpu_limit_cores: float | None = None


@dataclass(frozen=True)
class CgroupUsage:
    """Counters read on every sample."""

    memory_used: int | None = None  # bytes, page cache that can be dropped left out
    cpu_usage_seconds: float | None = None  # cumulative CPU time of the whole cgroup


class Cgroup:
    """The cgroup this process lives in, if any: its limits and its usage counters."""

    def __init__(self, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> None:
        self._root = root
        memberships = _read_memberships(proc_cgroup)
        self.version: CgroupVersion
        if (root / "cgroup.controllers").is_file():
            self.version = "cgroup v2"
            self._memory_dirs = self._cpu_dirs = _v2_dirs(root, memberships.get("", "/"))
        elif (root / "memory").is_dir() or (root / "cpu").is_dir() or (root / "cpu,cpuacct").is_dir():
            self.version = "cgroup v1"
            self._memory_dirs = _v1_dirs(root, memberships, "memory")
            self._cpu_dirs = _v1_dirs(root, memberships, "cpu")
            self._cpuacct_dirs = _v1_dirs(root, memberships, "cpuacct")
        else:
            self.version = ""
            self._memory_dirs = self._cpu_dirs = []

    def limits(self) -> CgroupLimits:
        """The tightest memory and CPU limits on the way from this cgroup to the root."""
        if self.version == "cgroup v2":
            memory = _smallest(_read_int(d / "memory.max") for d in self._memory_dirs)
            cpu = _smallest(_v2_cpu_max(d / "cpu.max") for d in self._cpu_dirs)
        elif self.version == "cgroup v1":
            memory = _smallest(_v1_memory_limit(d / "memory.limit_in_bytes") for d in self._memory_dirs)
            cpu = _smallest(_v1_cpu_quota(d) for d in self._cpu_dirs)
        else:
            return CgroupLimits(version="")
        return CgroupLimits(version=self.version, memory_limit=memory, cpu_limit_cores=cpu)

    def usage(self) -> CgroupUsage:
        """Memory in use (without inactive page cache) and cumulative CPU time."""
        if self.version == "cgroup v2" and self._memory_dirs:
            here = self._memory_dirs[0]
            memory = _read_int(here / "memory.current")
            if memory is not None:
                memory -= _stat_field(here / "memory.stat", "inactive_file")
            usec = _stat_field(here / "cpu.stat", "usage_usec", default=-1)
            return CgroupUsage(memory_used=memory, cpu_usage_seconds=usec / 1e6 if usec >= 0 else None)
        if self.version == "cgroup v1":
            memory = None
            if self._memory_dirs:
                here = self._memory_dirs[0]
                memory = _read_int(here / "memory.usage_in_bytes")
                if memory is not None:
                    memory -= _stat_field(here / "memory.stat", "total_inactive_file")
            nanos = _read_int(self._cpuacct_dirs[0] / "cpuacct.usage") if self._cpuacct_dirs else None
            return CgroupUsage(memory_used=memory, cpu_usage_seconds=nanos / 1e9 if nanos is not None else None)
        return CgroupUsage()


def _read_memberships(proc_cgroup: Path) -> dict[str, str]:
    """controller -> path from /proc/self/cgroup ("" is the v2 unified hierarchy)."""
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            found.setdefault(controller, parts[2] or "/")
    return found


def _ancestry(base: Path, cgroup_path: str) -> list[Path]:
    """The process's cgroup folder under `base`, then each parent up to `base`.

    Inside a container the process's own cgroup is usually mounted at `base`, so
    the full path from /proc/self/cgroup does not exist there: leading parts are
    dropped until it does.
    """
    parts = PurePosixPath(cgroup_path).parts[1:]
    for skip in range(len(parts) + 1):
        here = base.joinpath(*parts[skip:])
        if here.is_dir():
            chain = [here]
            while here != base:
                here = here.parent
                chain.append(here)
            return chain
    return []


def _v2_dirs(root: Path, cgroup_path: str) -> list[Path]:
    return _ancestry(root, cgroup_path)


def _v1_dirs(root: Path, memberships: dict[str, str], controller: str) -> list[Path]:
    for mount in sorted(root.glob(f"*{controller}*")):
        if controller in mount.name.split(",") and mount.is_dir():
            return _ancestry(mount, memberships.get(controller, "/"))
    return []


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_field(path: Path, key: str, default: int = 0) -> int:
    text = _read_text(path)
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().lstrip("-").isdigit():
            return int(value)
    return default


def _v2_cpu_max(path: Path) -> float | None:
    """cpu.max is "<quota> <period>" in microseconds, quota "max" for no limit."""
    text = _read_text(path)
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)


def _v1_memory_limit(path: Path) -> int | None:
    value = _read_int(path)
    return value if value is not None and 0 < value < V1_UNLIMITED else None


def _v1_cpu_quota(folder: Path) -> float | None:
    quota = _read_int(folder / "cpu.cfs_quota_us")
    period = _read_int(folder / "cpu.cfs_period_us")
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _smallest(values: Iterable[N | None]) -> N | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None
