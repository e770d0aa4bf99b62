"""Code that runs in spawned worker processes for the case-memory tests and bench.

Kept apart from the test modules so a spawned child imports only this and `core`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import random
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from medops.core.memory.case_memory import CaseMemory, CaseMemoryHandle
from medops.core.memory.errors import UnknownCase
from medops.core.memory.layout import GENERATION, SLOT_HEADER_BYTES


def make_case(case_id: str, version: int = 0, notes_bytes: int = 600) -> dict[str, Any]:
    """A synthetic ~2 KB case (no real patient data) whose fields all repeat its id and version."""
    rng = random.Random(f"{case_id}/{version}")
    return {
        "case_id": case_id,
        "version": version,
        "patient": {"age": rng.randint(1, 99), "sex": rng.choice("FM"), "weight_kg": round(rng.uniform(3, 120), 1)},
        "complaint": "persistent cough and fever for several days; " * 3,
        "history": [f"condition {k} noted in {2000 + k}" for k in range(8)],
        "vitals": [{"t": k * 60, "hr": rng.randint(50, 130), "spo2": rng.randint(88, 100),
                    "temp": round(rng.uniform(36, 40), 1)} for k in range(10)],
        "codes": [f"J{rng.randint(0, 99):02d}.{rng.randint(0, 9)}" for _ in range(6)],
        "notes": f"{case_id}:{version}:".ljust(notes_bytes, "n"),
        "flags": {"urgent": False, "isolation": True, "consent": True},
        "check": f"{case_id}#{version}",
    }


def is_whole(case: dict[str, Any]) -> bool:
    """Whether a case's fields agree with each other (a torn mix of two versions would not)."""
    tag = f"{case['case_id']}:{case['version']}:"
    return case["check"] == f"{case['case_id']}#{case['version']}" and case["notes"].startswith(tag)


def store_cases(handle: CaseMemoryHandle, ids: list[str], version: int) -> int:
    """Attach and store one case per id; returns this worker's PID."""
    with CaseMemory.attach(handle) as cases:
        for case_id in ids:
            cases.store(case_id, make_case(case_id, version))
    return os.getpid()


def read_cases(handle: CaseMemoryHandle, ids: list[str]) -> dict[str, Any]:
    """Attach and read each id; missing ones map to None."""
    found: dict[str, Any] = {}
    with CaseMemory.attach(handle) as cases:
        for case_id in ids:
            try:
                found[case_id] = cases.get(case_id)
            except UnknownCase:
                found[case_id] = None
    return found


def hammer_reads(handle: CaseMemoryHandle, ids: list[str], reads: int, start: Event) -> tuple[int, int, int]:
    """Read random ids `reads` times while writers run; return (whole, torn, misses)."""
    rng = random.Random(os.getpid())
    whole = torn = misses = 0
    with CaseMemory.attach(handle) as cases:
        start.wait()
        for _ in range(reads):
            case_id = rng.choice(ids)
            try:
                case = cases.get(case_id)
            except UnknownCase:
                misses += 1
                continue
            except ValueError:  # a torn copy that is not even JSON any more
                torn += 1
                continue
            if case["case_id"] == case_id and is_whole(case):
                whole += 1
            else:
                torn += 1
    return whole, torn, misses


def timed_reads(handle: CaseMemoryHandle, ids: list[str], reads: int, start: Event) -> tuple[int, float]:
    """Checked reads for the bench: (whole cases read, seconds taken); raises on a torn case."""
    with CaseMemory.attach(handle) as cases:
        start.wait()
        began = time.perf_counter()
        whole = 0
        for i in range(reads):
            case_id = ids[i % len(ids)]
            case = cases.get(case_id)
            if case["case_id"] != case_id or not is_whole(case):
                raise AssertionError(f"torn read of {case_id}")
            whole += 1
        return whole, time.perf_counter() - began


def create_and_wait(marker: str, ready: Event) -> None:
    """Create a store in /dev/shm, write its path to `marker`, then wait to be killed."""
    store = CaseMemory.create(8, 2048)
    store.store("left-behind", {"n": 1})
    Path(marker).write_text(store.handle.path)
    ready.set()
    while True:
        time.sleep(1)


def _run_and_report(results: Queue[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    results.put(fn(*args))


def run_in_workers(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]], timeout: float = 120) -> list[Any]:
    """Run each (function, args) in its own spawned process; return their results (in completion order)."""
    context = multiprocessing.get_context("spawn")
    results: Queue[Any] = context.Queue()
    workers = [context.Process(target=_run_and_report, args=(results, fn, args)) for fn, args in calls]
    for worker in workers:
        worker.start()
    collected: list[Any] = []
    waited = 0.0
    try:
        while len(collected) < len(workers):
            try:
                collected.append(results.get(timeout=0.2))
            except queue.Empty:
                waited += 0.2
                if waited > timeout or any(w.exitcode for w in workers):
                    break
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    if len(collected) < len(workers):
        raise AssertionError(f"{len(collected)} of {len(workers)} workers reported; "
                             f"exit codes {[worker.exitcode for worker in workers]}")
    return collected


def overwrite_and_churn(handle: CaseMemoryHandle, ids: list[str], rounds: int, start: Event) -> int:
    """Overwrite the ids with new versions, now and then releasing and re-storing one; returns writes."""
    rng = random.Random(os.getpid())
    writes = 0
    with CaseMemory.attach(handle) as cases:
        start.wait()
        for version in range(1, rounds + 1):
            case_id = rng.choice(ids)
            if version % 7 == 0:
                with contextlib.suppress(UnknownCase):  # the other writer released it first
                    cases.release(case_id)
            cases.store(case_id, make_case(case_id, version * 1_000_000 + os.getpid()))
            writes += 1
    return writes


def die_holding_the_lock(handle: CaseMemoryHandle, case_id: str) -> None:
    """Take the writer lock, start overwriting a case, and die there (as a SIGKILL mid-write would)."""
    cases = CaseMemory.attach(handle)
    _, h, tagged = cases._key(case_id, count=False)
    cases._lock()
    slot = cases._table.find(h, tagged)
    base = cases._slots_at + slot * cases._slot_bytes
    generation = GENERATION.unpack_from(cases._buf, base)[0]
    GENERATION.pack_into(cases._buf, base, generation + 1)
    cases._buf[base + SLOT_HEADER_BYTES:base + SLOT_HEADER_BYTES + 4] = b"\xff\xfe{["
    os._exit(0)


def run_to_death(fn: Callable[..., Any], args: tuple[Any, ...], timeout: float = 60) -> int | None:
    """Run fn(*args) in a spawned process that is expected to end itself; return its exit code."""
    worker = multiprocessing.get_context("spawn").Process(target=fn, args=args)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        worker.kill()
    return worker.exitcode


def hold_the_lock(handle: CaseMemoryHandle, held: Event, release: Event) -> bool:
    """Take the writer lock and keep it (a stuck but live writer) until told to let go."""
    with CaseMemory.attach(handle) as cases:
        cases._lock()
        held.set()
        release.wait(60)
        cases._unlock()
    return True


def append_entries(handle: CaseMemoryHandle, case_id: str, count: int, start: Barrier) -> int:
    """Add `count` entries tagged with this PID to one shared case, each by a read-modify-write `update`."""
    tag = os.getpid()
    with CaseMemory.attach(handle) as cases:
        start.wait()
        for n in range(count):
            cases.update(case_id, lambda case, n=n: {"entries": [*(case or {}).get("entries", []), [tag, n]]})
    return tag


def keep_a_store_for(data_dir: str, ready: Event, stop: Event) -> None:
    """Hold a case memory tagged for `data_dir`, as a running medops on that folder does, until told to stop."""
    from medops.core.settings.config import Settings

    with CaseMemory.from_settings(Settings(), Path(data_dir)):
        ready.set()
        stop.wait(120)
