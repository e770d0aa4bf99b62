"""The resizable CPU and I/O thread pools."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable

import pytest

from medops.core.clock import FakeClock, SystemClock
from medops.core.executors import ExecutorError, Executors, ResizablePool
from medops.core.settings.config import Settings

WAIT = 10.0  # seconds a test waits for threads before calling it a failure


class Concurrency:
    """Counts jobs running at once and remembers the most seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> int:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            return self.now

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


async def test_the_cpu_and_io_pools_return_results_off_the_loop() -> None:
    executors = Executors(Settings(cpu_threads=2, io_threads=3), SystemClock())
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    assert await loop.run_in_executor(executors.cpu, sum, [1, 2, 3]) == 6
    assert await loop.run_in_executor(executors.io, threading.get_ident) != loop_thread
    cpu, io = executors.snapshots()
    assert (cpu.name, cpu.capacity, cpu.completed) == ("cpu", 2, 1)
    assert (io.name, io.capacity, io.completed) == ("io", 3, 1)
    executors.shutdown()


async def test_an_exception_reaches_the_caller_and_counts_as_an_error() -> None:
    executors = Executors(Settings(), SystemClock())
    with pytest.raises(ZeroDivisionError):
        await asyncio.get_running_loop().run_in_executor(executors.io, lambda: 1 / 0)
    assert executors.io.snapshot().errors == 1
    executors.shutdown()


def test_snapshot_shows_active_and_queued_jobs() -> None:
    pool = ResizablePool("io", 2, SystemClock())
    gate = threading.Event()
    started = threading.Semaphore(0)

    def job() -> None:
        started.release()
        gate.wait(WAIT)

    futures = [pool.submit(job) for _ in range(5)]
    assert started.acquire(timeout=WAIT) and started.acquire(timeout=WAIT)
    snap = pool.snapshot()
    assert (snap.capacity, snap.active, snap.queued) == (2, 2, 3)
    assert snap.saturation == 1.0
    gate.set()
    for future in futures:
        future.result(WAIT)
    snap = pool.snapshot()
    assert (snap.active, snap.queued, snap.completed) == (0, 0, 5)
    pool.shutdown()


async def test_queue_wait_percentiles_use_the_clock(clock: FakeClock) -> None:
    pool = ResizablePool("cpu", 1, clock)
    gate, started = threading.Event(), threading.Event()

    def first_job() -> None:
        started.set()
        gate.wait(WAIT)

    first = pool.submit(first_job)
    assert started.wait(WAIT)
    second = pool.submit(lambda: None)
    await clock.advance(2.0)
    gate.set()
    first.result(WAIT)
    second.result(WAIT)
    snap = pool.snapshot()
    assert snap.wait_p50 == 0.0  # the first job started at once
    assert snap.wait_p95 == 2.0  # the second waited two seconds of the fake clock
    pool.shutdown()


def test_growing_lets_queued_work_run_at_once() -> None:
    pool = ResizablePool("io", 1, SystemClock())
    together = threading.Barrier(4, timeout=WAIT)  # breaks unless four jobs run at the same time
    futures = [pool.submit(together.wait) for _ in range(4)]
    pool.resize(4)
    for future in futures:
        future.result(WAIT)
    assert pool.snapshot().capacity == 4
    pool.shutdown()


def test_shrinking_lets_running_jobs_finish_then_runs_one_at_a_time() -> None:
    pool = ResizablePool("io", 4, SystemClock())
    gate = threading.Event()
    running = Concurrency()
    started = threading.Semaphore(0)

    def first_wave() -> str:
        started.release()
        gate.wait(WAIT)
        return "first"

    def queued() -> int:
        with running as now:
            return now

    firsts = [pool.submit(first_wave) for _ in range(4)]
    for _ in range(4):
        assert started.acquire(timeout=WAIT)
    later = [pool.submit(queued) for _ in range(20)]
    pool.resize(1)
    gate.set()
    assert [f.result(WAIT) for f in firsts] == ["first"] * 4
    assert all(f.result(WAIT) == 1 for f in later)  # never two at once after the shrink
    assert running.most == 1
    pool.shutdown()
    assert pool.threads == 0


def test_resizing_up_and_down_under_load_loses_no_work() -> None:
    pool = ResizablePool("io", 3, SystemClock())
    running = Concurrency()
    rng = random.Random(8)
    done = threading.Event()

    def job(n: int) -> int:
        with running:
            threading.Event().wait(rng.random() / 2000)
            return n * n

    def resizer() -> None:
        while not done.is_set():
            pool.resize(rng.randint(1, 12))
            threading.Event().wait(0.001)

    resizing = threading.Thread(target=resizer)
    resizing.start()
    futures = [pool.submit(job, n) for n in range(2_000)]
    results = [f.result(WAIT) for f in futures]
    done.set()
    resizing.join()
    assert results == [n * n for n in range(2_000)]
    snap = pool.snapshot()
    assert (snap.completed, snap.errors, snap.queued, snap.active) == (2_000, 0, 0, 0)
    assert running.most <= 12
    pool.shutdown()


async def test_a_cancelled_caller_s_queued_job_never_runs() -> None:
    executors = Executors(Settings(io_threads=1), SystemClock())
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    ran: list[str] = []

    async def caller(fn: Callable[..., object], *args: object) -> object:
        return await loop.run_in_executor(executors.io, fn, *args)

    blocker = asyncio.ensure_future(caller(gate.wait, WAIT))
    waiting = asyncio.ensure_future(caller(ran.append, "ran"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    await blocker
    await loop.run_in_executor(executors.io, lambda: None)  # the queue is empty past the cancelled job
    assert ran == []
    executors.shutdown()


def test_a_pool_refuses_work_after_shutdown_and_takes_it_after_reopen() -> None:
    pool = ResizablePool("cpu", 1, SystemClock())
    pool.shutdown()
    with pytest.raises(ExecutorError, match="shut down"):
        pool.submit(int)
    pool.reopen()
    assert pool.submit(int, "7").result(WAIT) == 7
    pool.shutdown()


def test_a_pool_needs_at_least_one_thread() -> None:
    with pytest.raises(ExecutorError, match="at least 1"):
        ResizablePool("io", 0, SystemClock())
    pool = ResizablePool("io", 2, SystemClock())
    with pytest.raises(ExecutorError, match="at least 1"):
        pool.resize(0)
    pool.shutdown()
