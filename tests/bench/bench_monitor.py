"""Monitor and executor costs beside the reference design. Run with `make bench`.

- One resource sample (process + per-core CPU + memory + disk + cgroup, with the
  hour-long history ring full) beside the reference ResourceMonitor's
  get_current_usage() + get_system_usage(), which block in cpu_percent(interval=0.1).
- Tiny jobs through the resizable pool beside ThreadPoolExecutor (the reference's
  OptimizedThreadPool), and the same pool resized every millisecond meanwhile.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from medops.core.clock import SystemClock
from medops.core.executors import ResizablePool
from medops.core.watch.monitor import SystemMonitor

SAMPLES = 3_000
REFERENCE_SAMPLES = 5
JOBS = 20_000


class ReferenceResourceMonitor:
    """The reference design's ResourceMonitor, verbatim in behaviour."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start_time = time.time()

    def get_current_usage(self) -> dict[str, Any]:
        cpu_percent = self.process.cpu_percent(interval=0.1)
        memory_info = self.process.memory_info()
        return {
            "cpu_percent": cpu_percent,
            "memory_mb": memory_info.rss / (1024 * 1024),
            "memory_percent": self.process.memory_percent(),
            "num_threads": self.process.num_threads(),
            "num_fds": self.process.num_fds() if hasattr(self.process, "num_fds") else 0,
            "uptime_seconds": time.time() - self.start_time,
        }

    def get_system_usage(self) -> dict[str, Any]:
        return {
            "cpu_count": psutil.cpu_count(),
            "cpu_percent": psutil.cpu_percent(interval=0.1, percpu=True),
            "memory": psutil.virtual_memory()._asdict(),
            "disk": psutil.disk_usage("/")._asdict(),
        }


def _ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:7.3f} ms  p99 {p99 * 1000:7.3f} ms  "
            f"max {ordered[-1] * 1000:7.3f} ms")


def test_one_sample_beside_the_reference_monitor(tmp_path: Path) -> None:
    monitor = SystemMonitor(SystemClock(), tmp_path, history_seconds=3_600, interval=1.0)
    for _ in range(3_600):  # a full hour of history, so the ring's copy is in the figure
        monitor.sample()
    ours, reported = [], []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        sample = monitor.sample()
        ours.append(time.perf_counter() - started)
        reported.append(sample.sample_cost_ms / 1000)
    reference = ReferenceResourceMonitor()
    theirs = []
    for _ in range(REFERENCE_SAMPLES):
        started = time.perf_counter()
        reference.get_current_usage()
        reference.get_system_usage()
        theirs.append(time.perf_counter() - started)
    print(f"\nmonitor sample ({SAMPLES} samples, history ring full):")
    print(f"  medops SystemMonitor.sample      {_ms(ours)}")
    print(f"  (its own sample_cost_ms)         {_ms(reported)}")
    print(f"  reference ResourceMonitor        {_ms(theirs)}  ({REFERENCE_SAMPLES} samples; blocks the caller)")
    assert statistics.median(ours) < 0.001, "one sample must cost under a millisecond"


def _run_jobs(submit: Any) -> float:
    started = time.perf_counter()
    futures = [submit(int, "1") for _ in range(JOBS)]
    assert sum(f.result() for f in futures) == JOBS
    return time.perf_counter() - started


def _keep_resizing(pool: ResizablePool, most: int, done: threading.Event) -> None:
    size = 1
    while not done.is_set():
        pool.resize(size)
        size = size % most + 1
        time.sleep(0.001)


def test_job_overhead_beside_thread_pool_executor() -> None:
    threads = multiprocessing.cpu_count() * 4
    reference = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="io-")
    pool = ResizablePool("io", threads, SystemClock())
    ours, theirs, resized = [], [], []
    for _ in range(3):
        theirs.append(_run_jobs(reference.submit))
        ours.append(_run_jobs(pool.submit))
        done = threading.Event()
        thread = threading.Thread(target=_keep_resizing, args=(pool, threads, done))
        thread.start()
        resized.append(_run_jobs(pool.submit))
        done.set()
        thread.join()
        pool.resize(threads)
    reference.shutdown()
    pool.shutdown()
    print(f"\n{JOBS:,} tiny jobs through {threads} threads (best of 3):")
    print(f"  reference ThreadPoolExecutor     {min(theirs) / JOBS * 1e6:6.1f} µs/job")
    print(f"  medops ResizablePool             {min(ours) / JOBS * 1e6:6.1f} µs/job")
    print(f"  ... resized every millisecond    {min(resized) / JOBS * 1e6:6.1f} µs/job (no job lost)")
