"""Cgroup files written under a temporary folder, as /sys/fs/cgroup and /proc/self/cgroup would show them."""

from __future__ import annotations

from pathlib import Path

GIB = 1024**3


def tree(root: Path, files: dict[str, str]) -> Path:
    """Write a fixture cgroup tree: relative path -> file content."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    return root


def proc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proc-self-cgroup"
    path.write_text(text)
    return path


V2_LIMITED = {
    "cgroup.controllers": "cpuset cpu io memory pids",
    "memory.max": "max",
    "cpu.max": "max 100000",
    "app.slice/memory.max": str(2 * GIB),
    "app.slice/cpu.max": "150000 100000",
    "app.slice/memory.current": str(GIB),
    "app.slice/memory.stat": "anon 700000000\nfile 300000000\ninactive_file 100000000\nactive_file 5",
    "app.slice/cpu.stat": "usage_usec 4500000\nuser_usec 4000000\nsystem_usec 500000",
}

