"""Shared case memory: a real /dev/shm segment, real spawned worker processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from medops.core.errors import CaseMemoryError
from medops.core.memory import case_memory
from medops.core.memory.case_memory import CaseMemory
from medops.core.memory.errors import (
    CaseMemoryBusy,
    CaseNotEncodable,
    CaseTooLarge,
    InvalidCaseId,
    NoFreeSlot,
    SegmentUnavailable,
    UnknownCase,
)
from medops.core.memory.layout import SLOT_HEADER_BYTES, U32, WRITE_SEQ_AT
from medops.core.settings.config import Settings
from tests.helpers.case_workers import (
    append_entries,
    create_and_wait,
    die_holding_the_lock,
    hammer_reads,
    hold_the_lock,
    is_whole,
    make_case,
    overwrite_and_churn,
    read_cases,
    run_in_workers,
    run_to_death,
    store_cases,
)

SECRET = "Jane Roe, HIV positive"  # stands for patient data that must never reach a message


@pytest.fixture
def cases() -> Iterator[CaseMemory]:
    store = CaseMemory.create(8, 4096)
    yield store
    store.close()


def test_a_stored_case_comes_back_equal_and_as_a_fresh_dict(cases: CaseMemory) -> None:
    case = make_case("c-1")
    cases.store("c-1", case)
    first = cases.get("c-1")
    first["notes"] = "changed by the caller"
    assert cases.get("c-1") == case


def test_storing_an_id_again_overwrites_its_slot_without_leaking_one(cases: CaseMemory) -> None:
    cases.store("c-1", {"v": 0})
    slot = cases.snapshot().occupied
    for version in range(1, 20):  # more stores than there are slots
        cases.store("c-1", {"v": version})
    snapshot = cases.snapshot()
    assert cases.get("c-1") == {"v": 19}
    assert (snapshot.used, snapshot.occupied, snapshot.overwrites) == (1, slot, 19)


def test_a_full_store_refuses_with_used_and_total_then_takes_a_case_after_a_release(cases: CaseMemory) -> None:
    for i in range(8):
        cases.store(f"c-{i}", {"i": i})
    with pytest.raises(NoFreeSlot) as refused:
        cases.store("one-too-many", {"i": 8})
    assert (refused.value.used, refused.value.total) == (8, 8)
    assert "8 of 8 slots" in str(refused.value)
    cases.release("c-3")
    cases.store("one-too-many", {"i": 8})
    assert cases.get("one-too-many") == {"i": 8}
    assert dict(cases.snapshot().rejections)["no_free_slot"] == 1


def test_a_case_too_large_is_refused_with_its_size_and_the_limit_but_not_its_contents(cases: CaseMemory) -> None:
    with pytest.raises(CaseTooLarge) as refused:
        cases.store("big", {"name": SECRET, "notes": "x" * 5000})
    assert refused.value.limit == cases.payload_limit == 4096 - SLOT_HEADER_BYTES
    assert refused.value.size > refused.value.limit
    assert f"{refused.value.size:,}" in str(refused.value) and SECRET not in str(refused.value)
    assert dict(cases.snapshot().rejections)["too_large"] == 1
    with pytest.raises(UnknownCase):
        cases.get("big")


def test_a_case_that_fits_exactly_is_taken(cases: CaseMemory) -> None:
    padding = cases.payload_limit - len(b'{"n":""}')
    cases.store("exact", {"n": "x" * padding})
    assert cases.snapshot().largest_case == cases.payload_limit


@pytest.mark.parametrize("case_id", ["never-stored", "released"])
def test_get_and_release_of_an_absent_case_both_raise_unknown_case(cases: CaseMemory, case_id: str) -> None:
    cases.store("released", {"n": 1})
    cases.release("released")
    with pytest.raises(UnknownCase) as missing:
        cases.get(case_id)
    assert missing.value.case_id == case_id
    with pytest.raises(UnknownCase):
        cases.release(case_id)
    assert case_id not in cases


@pytest.mark.parametrize("case_id", ["", "x" * 65, "é" * 33, 42, None])
def test_an_unusable_case_id_is_refused(cases: CaseMemory, case_id: object) -> None:
    with pytest.raises(InvalidCaseId):
        cases.store(case_id, {"n": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidCaseId):
        cases.get(case_id)  # type: ignore[arg-type]


def test_a_case_json_cannot_carry_is_refused_without_showing_it(cases: CaseMemory) -> None:
    with pytest.raises(CaseNotEncodable) as refused:
        cases.store("c-1", {"name": SECRET, "seen": {SECRET}})
    assert SECRET not in str(refused.value)
    assert dict(cases.snapshot().rejections)["not_encodable"] == 1


def test_errors_share_the_case_memory_category(cases: CaseMemory) -> None:
    with pytest.raises(CaseMemoryError):
        cases.get("absent")


def test_the_snapshot_reports_slots_bytes_and_the_largest_case(cases: CaseMemory) -> None:
    cases.store("a", {"n": "x" * 10})
    cases.store("b", {"n": "x" * 100})
    cases.store("c", {"n": 1})
    cases.release("a")
    snapshot = cases.snapshot()
    assert (snapshot.total, snapshot.used, snapshot.free, snapshot.slot_bytes) == (8, 2, 6, 4096)
    assert snapshot.bytes_used == len(b'{"n":""}') + 100 + len(b'{"n":1}')
    assert snapshot.largest_case == len(b'{"n":""}') + 100
    assert len(snapshot.occupied) == 2 and snapshot.segment == cases.handle.path


def test_the_segment_lives_in_dev_shm_private_to_the_owner_and_named_for_its_process() -> None:
    store = CaseMemory.from_settings(Settings(max_cases_in_memory=10, case_memory_mb=1))
    path = Path(store.handle.path)
    info = path.stat()
    assert path.parent == Path("/dev/shm") and f"-{os.getpid()}-" in path.name
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert store.snapshot().total == 10 and store.snapshot().slot_bytes == 1024 * 1024 // 10
    store.close()
    store.close()
    assert not path.exists()


def test_attaching_refuses_a_segment_others_can_read(tmp_path: Path) -> None:
    store = CaseMemory.create(2, 2048, tmp_path)
    os.chmod(store.handle.path, 0o644)
    with pytest.raises(SegmentUnavailable, match="not private"):
        CaseMemory.attach(store.handle)
    store.close()
    with pytest.raises(SegmentUnavailable, match="still running"):
        CaseMemory.attach(store.handle)


def test_worker_processes_store_and_read_cases_the_core_sees(cases: CaseMemory) -> None:
    cases.store("from-core", make_case("from-core"))
    pids = run_in_workers([(store_cases, (cases.handle, ["w-1", "w-2"], 3)),
                           (store_cases, (cases.handle, ["w-3"], 5))])
    assert os.getpid() not in pids
    assert cases.get("w-1") == make_case("w-1", 3) and cases.get("w-3") == make_case("w-3", 5)
    [seen] = run_in_workers([(read_cases, (cases.handle, ["from-core", "w-2", "absent"]))])
    assert seen == {"from-core": make_case("from-core"), "w-2": make_case("w-2", 3), "absent": None}


def test_readers_never_see_a_torn_case_while_writers_hammer_the_same_slots() -> None:
    ids = [f"hot-{i}" for i in range(4)]
    context = multiprocessing.get_context("spawn")
    with CaseMemory.create(6, 4096) as store:
        for case_id in ids:
            store.store(case_id, make_case(case_id, 0))
        start = context.Event()
        start.set()
        results = run_in_workers([(overwrite_and_churn, (store.handle, ids, 3_000, start)),
                                  (overwrite_and_churn, (store.handle, ids, 3_000, start)),
                                  (hammer_reads, (store.handle, ids, 20_000, start)),
                                  (hammer_reads, (store.handle, ids, 20_000, start))])
        final = [store.get(case_id) for case_id in ids if case_id in store]
    reads = [r for r in results if isinstance(r, tuple)]
    assert len(reads) == 2
    assert sum(torn for _, torn, _ in reads) == 0
    assert sum(whole for whole, _, _ in reads) > 0
    assert all(is_whole(case) for case in final)


def test_update_builds_on_the_case_in_memory_and_returns_what_it_stored(cases: CaseMemory) -> None:
    assert cases.update("case-u", lambda case: {"seen": [] if case is None else case["seen"]}) == {"seen": []}
    assert cases.update("case-u", lambda case: {"seen": [*case["seen"], 1]}) == {"seen": [1]}  # type: ignore[index]
    assert cases.get("case-u") == {"seen": [1]}


def test_an_update_that_does_not_fit_leaves_the_case_as_it_was(cases: CaseMemory) -> None:
    cases.store("case-v", {"n": 1})
    with pytest.raises(CaseTooLarge):
        cases.update("case-v", lambda case: {"n": "x" * cases.payload_limit})
    with pytest.raises(RuntimeError, match="boom"):
        cases.update("case-v", lambda case: (_ for _ in ()).throw(RuntimeError("boom")))
    assert cases.get("case-v") == {"n": 1}
    cases.store("case-w", {"n": 2})  # and the writer lock was let go both times


def test_updates_from_two_processes_to_one_case_lose_nothing() -> None:
    start = multiprocessing.get_context("spawn").Barrier(2)  # both attached before either writes
    with CaseMemory.create(4, 64 * 1024) as store:
        store.store("shared", {"entries": []})
        tags = run_in_workers([(append_entries, (store.handle, "shared", 400, start))] * 2)
        entries = store.get("shared")["entries"]
    assert sorted(map(tuple, entries)) == sorted((tag, n) for tag in tags for n in range(400))


def test_a_writer_that_dies_holding_the_lock_is_recovered_from(cases: CaseMemory) -> None:
    cases.store("kept", {"n": 1})
    cases.store("torn", {"n": 2})
    assert run_to_death(die_holding_the_lock, (cases.handle, "torn")) == 0
    assert U32.unpack_from(cases._buf, WRITE_SEQ_AT)[0] & 1  # the dead writer's mark is still there
    cases.store("after", {"n": 3})  # the next writer gets the lock and repairs
    assert cases.get("kept") == {"n": 1} and cases.get("after") == {"n": 3}
    with pytest.raises(UnknownCase):
        cases.get("torn")
    assert cases.snapshot().used == 2


def test_a_reader_facing_a_dead_writers_slot_gets_a_clean_answer(cases: CaseMemory) -> None:
    cases.store("torn", {"n": 2})
    assert run_to_death(die_holding_the_lock, (cases.handle, "torn")) == 0
    with pytest.raises(UnknownCase):
        cases.get("torn")  # spins, then reads under the lock, which repairs the slot


def test_a_live_writer_stuck_on_the_lock_makes_writes_busy_but_not_reads(
        cases: CaseMemory, monkeypatch: pytest.MonkeyPatch) -> None:
    cases.store("c-1", {"n": 1})
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=hold_the_lock, args=(cases.handle, held, release))
    holder.start()
    try:
        assert held.wait(60)
        monkeypatch.setattr(case_memory, "LOCK_ATTEMPTS", 3)
        with pytest.raises(CaseMemoryBusy, match="locked by another process"):
            cases.store("c-2", {"n": 2})
        assert cases.get("c-1") == {"n": 1}
    finally:
        release.set()
        holder.join(30)
    cases.store("c-2", {"n": 2})
    assert cases.get("c-2") == {"n": 2}


def test_a_segment_left_by_a_killed_owner_is_reclaimed_at_the_next_start(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    marker = tmp_path / "segment"
    owner = context.Process(target=create_and_wait, args=(str(marker), ready))
    owner.start()
    try:
        assert ready.wait(60)
        left = Path(marker.read_text())
        assert left.exists()
    finally:
        os.kill(owner.pid, signal.SIGKILL)  # type: ignore[arg-type]
        owner.join(30)
    assert left.exists()  # nobody cleaned up after the kill
    with CaseMemory.create(2, 2048) as fresh:
        assert not left.exists()
        assert Path(fresh.handle.path).exists()


def test_segments_of_live_processes_are_left_alone(cases: CaseMemory) -> None:
    with CaseMemory.create(2, 2048):
        assert Path(cases.handle.path).exists()


def test_a_forked_child_gets_its_own_lock(cases: CaseMemory) -> None:
    cases._lock()
    try:
        pid = os.fork()
        if pid == 0:  # child: the parent holds the lock, so a non-blocking try must fail
            import fcntl

            try:
                fcntl.flock(cases._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
    finally:
        cases._unlock()
    assert os.waitstatus_to_exitcode(status) == 0
