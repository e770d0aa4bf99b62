"""Console benchmarks: idle CPU at 1 and 4 refreshes a second, memory, time to first frame.

Goals (issue 9): the console's CPU while idle over 30 s at most 2% of one core at
1 refresh/s and 10% at 4/s; first frame under 1.5 s. `medops` runs the core in the
same process, so each figure is printed beside its peer measured in the same run:
the core alone (no Textual) started with the same settings and data folder; the
difference is what the console costs.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

MEDOPS = Path(sys.executable).parent / "medops"
IDLE_SECONDS = 30.0
SETTLE_SECONDS = 2.0  # after the first snapshot: the core's start-up work is over
SIZE = (120, 40)
FIRST_FRAME_MARK = b"Overview"  # the tab bar: drawn in the first frame
FIRST_SNAPSHOT_MARK = b"intake open"  # the status line once the core has answered

CORE_ALONE = """
import asyncio, sys
from medops.core.settings.config import load_settings
from medops.core.settings.paths import locate
from medops.core.resource_core import ResourceCore

async def main():
    core = ResourceCore(load_settings(locate()).settings, locate())
    await core.start()
    print("started", flush=True)
    await asyncio.sleep(float(sys.argv[1]))
    await core.stop()

asyncio.run(main())
"""


@dataclass(frozen=True)
class Idle:
    """One idle measurement of a process."""

    cpu_percent: float  # of one core
    rss_mib: float


class Screen:
    """`medops` on a pty whose output is drained on a thread (a full pty would stall it)."""

    def __init__(self, env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self.started = time.perf_counter()
        self.process = subprocess.Popen([str(MEDOPS)], stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True)
        os.close(slave)
        self.master = master
        self.tail = b""
        self.marks: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            now = time.perf_counter()
            self.tail = (self.tail + chunk)[-8192:]
            for mark in (FIRST_FRAME_MARK, FIRST_SNAPSHOT_MARK):
                if mark not in self.marks and mark in self.tail:
                    self.marks[mark] = now - self.started

    def wait_for(self, mark: bytes, within: float = 120.0) -> float:
        deadline = time.perf_counter() + within
        while mark not in self.marks:
            if time.perf_counter() > deadline or self.process.poll() is not None:
                raise AssertionError(f"medops never showed {mark!r}; last output: {self.tail[-400:]!r}")
            time.sleep(0.01)
        return self.marks[mark]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stop.set()
        self._reader.join()
        os.close(self.master)


def measure_idle(pid: int, seconds: float) -> Idle:
    """CPU (user + system, % of one core) of `pid` over `seconds`, and its RSS at the end."""
    process = psutil.Process(pid)
    before = process.cpu_times()
    time.sleep(seconds)
    after = process.cpu_times()
    busy = (after.user - before.user) + (after.system - before.system)
    return Idle(100.0 * busy / seconds, process.memory_info().rss / (1024 * 1024))


def environment(data: Path, refresh: float) -> dict[str, str]:
    return {**os.environ, "MEDOPS_DATA_DIR": str(data / "data"), "MEDOPS_CONFIG_DIR": str(data / "config"),
            "MEDOPS_REFRESH_INTERVAL": str(refresh), "TERM": "xterm-256color"}


def console_run(data: Path, refresh: float, idle: bool = True) -> tuple[float, float, Idle | None]:
    """(first frame s, first snapshot s, idle figures) for one `medops` run."""
    screen = Screen(environment(data, refresh))
    try:
        frame = screen.wait_for(FIRST_FRAME_MARK)
        snapshot = screen.wait_for(FIRST_SNAPSHOT_MARK)
        if not idle:
            return frame, snapshot, None
        time.sleep(SETTLE_SECONDS)
        return frame, snapshot, measure_idle(screen.process.pid, IDLE_SECONDS)
    finally:
        screen.close()


def core_alone(data: Path) -> Idle:
    """The same core, same settings and folder, with no console: the peer figure."""
    env = environment(data, 1.0)
    process = subprocess.Popen([sys.executable, "-c", CORE_ALONE, str(SETTLE_SECONDS + IDLE_SECONDS + 5)],
                               env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "started"
        time.sleep(SETTLE_SECONDS)
        return measure_idle(process.pid, IDLE_SECONDS)
    finally:
        process.terminate()
        process.wait(10)


def import_seconds(module: str) -> float:
    """Wall time of a fresh interpreter importing `module` (best of 3)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        best = min(best, time.perf_counter() - started)
    return best


def test_console_first_frame_idle_cpu_and_memory() -> None:
    with tempfile.TemporaryDirectory(prefix="medops-bench-console-") as folder:
        data = Path(folder)
        cold_frame, cold_snapshot, _ = console_run(data, 1.0, idle=False)  # also builds the knowledge base
        warm_frame, warm_snapshot, at_1 = console_run(data, 1.0)
        _, _, at_4 = console_run(data, 0.25)
        core = core_alone(data)
    assert at_1 is not None and at_4 is not None
    python_start = import_seconds("sys")
    console_import = import_seconds("medops.console.app")
    print()
    print(f"first frame: {warm_frame:.2f} s (cold data folder {cold_frame:.2f} s; goal < 1.5 s)"
          f" | fresh python {python_start:.2f} s, importing console.app {console_import:.2f} s")
    print(f"first snapshot on screen: {warm_snapshot:.2f} s (cold data folder, knowledge build included:"
          f" {cold_snapshot:.2f} s)")
    for label, run, goal in (("1/s", at_1, 2.0), ("4/s", at_4, 10.0)):
        console_share = run.cpu_percent - core.cpu_percent
        verdict = "met" if console_share <= goal else "MISSED"
        print(f"idle {IDLE_SECONDS:.0f} s at {label}: medops {run.cpu_percent:.2f}% of a core, core alone"
              f" {core.cpu_percent:.2f}% -> console {console_share:.2f}% (goal <= {goal:g}%: {verdict})")
    print(f"memory (RSS): medops {at_1.rss_mib:.0f} MiB at 1/s, {at_4.rss_mib:.0f} MiB at 4/s;"
          f" core alone {core.rss_mib:.0f} MiB -> console {at_1.rss_mib - core.rss_mib:.0f} MiB")
    assert warm_frame > 0 and at_1.cpu_percent >= 0
