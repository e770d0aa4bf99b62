"""CPU and I/O thread pools that report their saturation and can be resized live.

`ThreadPoolExecutor` can grow only by being replaced and never shrinks, so the
tuner could not act on it. `ResizablePool` keeps one queue of work; resizing
changes how many workers may take from it, so nothing queued is ever lost:
surplus workers leave only between jobs, and new ones start when work waits.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from medops.core.clock import Clock
from medops.core.errors import MedopsError
from medops.core.settings.config import Settings
from medops.core.snapshot import PoolSnapshot
from medops.core.waits import RecentWaits

P = ParamSpec("P")
T = TypeVar("T")

# Queue waits kept for the p50/p95 figures: enough for a stable p95, bounded memory.
WAIT_SAMPLES = 1_024


class ExecutorError(MedopsError):
    """A thread pool refused work or a resize."""


@dataclass
class _WorkItem:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queued_at: float


class ResizablePool(Executor):
    """A thread pool whose size can go up or down while work is running."""

    def __init__(self, name: str, size: int, clock: Clock) -> None:
        if size < 1:
            raise ExecutorError(f"pool {name!r} needs at least 1 thread, got {size}; raise the setting")
        self.name = name
        self._clock = clock
        self._target = size
        self._lock = threading.Condition()
        self._queue: collections.deque[_WorkItem] = collections.deque()
        self._workers: set[threading.Thread] = set()
        self._idle = 0
        self._active = 0
        self._completed = 0
        self._errors = 0
        self._waits = RecentWaits(WAIT_SAMPLES)
        self._shutdown = False
        self._numbers = itertools.count(1)

    @property
    def capacity(self) -> int:
        """How many jobs may run at once."""
        return self._target

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue `fn(*args, **kwargs)`; a worker runs it as soon as one is free."""
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise ExecutorError(f"pool {self.name!r} is shut down; start the core again to submit work")
            self._queue.append(_WorkItem(future, fn, args, kwargs, self._clock.monotonic()))
            if self._idle > 0:
                self._lock.notify()
            elif len(self._workers) < self._target:
                self._spawn()
        return future

    def resize(self, size: int) -> None:
        """Allow `size` jobs at once; running jobs finish, queued ones wait their turn."""
        if size < 1:
            raise ExecutorError(f"pool {self.name!r} needs at least 1 thread, got {size}")
        with self._lock:
            self._target = size
            # Start workers for work already waiting; surplus ones notice the
            # smaller target when they next look for work.
            while len(self._workers) < min(self._target, len(self._queue) + self._active):
                self._spawn()
            self._lock.notify_all()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; queued work still runs unless `cancel_futures`."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft().future.cancel()
            workers = list(self._workers)
            self._lock.notify_all()
        if wait:
            for worker in workers:
                worker.join()

    def reopen(self) -> None:
        """Take work again after `shutdown` (the core's stop, then start)."""
        with self._lock:
            self._shutdown = False

    def snapshot(self) -> PoolSnapshot:
        """Capacity, active, queued, completed, errors and queue-wait percentiles."""
        with self._lock:
            p50, p95 = self._waits.percentiles()
            return PoolSnapshot(name=self.name, capacity=self._target, active=self._active,
                                queued=len(self._queue), completed=self._completed, errors=self._errors,
                                wait_p50=p50, wait_p95=p95)

    @property
    def threads(self) -> int:
        """Worker threads alive now (may briefly exceed capacity after a shrink)."""
        with self._lock:
            return len(self._workers)

    def _spawn(self) -> None:
        worker = threading.Thread(target=self._work, name=f"medops-{self.name}-{next(self._numbers)}", daemon=True)
        self._workers.add(worker)
        worker.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                item = self._next_item(me)
                if item is None:
                    return
                self._active += 1
                self._waits.add(self._clock.monotonic() - item.queued_at)
            try:
                result = item.fn(*item.args, **item.kwargs)
            except BaseException as exc:  # the caller sees it through the future
                self._finish(failed=True)
                item.future.set_exception(exc)
            else:
                self._finish(failed=False)
                item.future.set_result(result)

    def _finish(self, *, failed: bool) -> None:
        # Counted before the future resolves, so a caller that sees its result sees it counted.
        with self._lock:
            self._active -= 1
            self._completed += 1
            self._errors += failed

    def _next_item(self, me: threading.Thread) -> _WorkItem | None:
        """The next job for this worker, or None when it should leave (lock held)."""
        while True:
            if len(self._workers) > self._target or (self._shutdown and not self._queue):
                self._workers.discard(me)
                self._lock.notify_all()
                return None
            while self._queue:
                item = self._queue.popleft()
                if item.future.set_running_or_notify_cancel():
                    return item
            self._idle += 1
            self._lock.wait()
            self._idle -= 1


class Executors:
    """The core's CPU and I/O thread pools, sized from the settings.

    The CPU threads build the knowledge base (parsing ICD-10-CM and filling DuckDB);
    the I/O threads read documents in and write cases to case memory.
    """

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.cpu = ResizablePool("cpu", settings.cpu_threads, clock)
        self.io = ResizablePool("io", settings.io_threads, clock)

    def apply(self, settings: Settings) -> None:
        """Take a live change of cpu_threads (io_threads is the tuner's knob: `CoreTick.pin` sizes it)."""
        self.cpu.resize(settings.cpu_threads)

    def snapshots(self) -> tuple[PoolSnapshot, ...]:
        """PoolSnapshots named "cpu" and "io"."""
        return self.cpu.snapshot(), self.io.snapshot()

    def shutdown(self, wait: bool = True) -> None:
        """Stop both pools; queued work is cancelled, running work finishes."""
        self.cpu.shutdown(wait=False, cancel_futures=True)
        self.io.shutdown(wait=False, cancel_futures=True)
        if wait:
            self.cpu.shutdown(wait=True)
            self.io.shutdown(wait=True)

    def reopen(self) -> None:
        """Take work again after `shutdown`."""
        self.cpu.reopen()
        self.io.reopen()

