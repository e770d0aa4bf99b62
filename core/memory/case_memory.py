"""`CaseMemory`: fixed-slot case store in named shared memory, usable from any process.

The core creates the segment (`CaseMemory.create`); worker processes open it
with `CaseMemory.attach(handle)`. Readers take no lock: each slot is a seqlock
(generation odd while written, re-checked after the copy, a 64-bit checksum as backstop)
and the hash index has its own, so a reader returns a consistent case or a
clean miss, never a torn one. Writers are serialised by `flock` on the segment
file, which the kernel releases if the holder dies; the next writer sees the
"mutating" mark the dead one left and rebuilds index and free list from the
slot headers.

Reads rely on x86-64's store ordering (the writer's stores become visible in
program order); on weaker CPUs the checksum still refuses a torn copy.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.core.errors import CaseMemoryError
from medops.core.memory.codec import EncodeError, checksum, decode_case, encode_case
from medops.core.memory.errors import (
    CaseMemoryBusy,
    CaseNotEncodable,
    CaseTooLarge,
    InvalidCaseId,
    NoFreeSlot,
    SegmentUnavailable,
    UnknownCase,
)
from medops.core.memory.layout import (
    COUNTERS,
    COUNTERS_AT,
    GENERATION,
    GEOMETRY,
    HEADER_BYTES,
    KEY_AT,
    LAYOUT_VERSION,
    MAGIC,
    MAX_KEY_BYTES,
    REJECTION_REASONS,
    SLOT_BODY,
    SLOT_HEADER,
    SLOT_HEADER_BYTES,
    U32,
    U64,
    WRITE_SEQ_AT,
    SegmentLayout,
)
from medops.core.memory.segment import (
    SHM_DIR,
    MappedSegment,
    create_segment,
    folder_tag,
    open_segment,
    reclaim_abandoned,
    running_segments,
)
from medops.core.memory.slot_table import SlotTable, key_hash, tagged_key
from medops.core.settings.config import Settings
from medops.core.snapshot import SlotsSnapshot

log = logging.getLogger(__name__)

SPIN_READS = 64  # optimistic read attempts before yielding the CPU between attempts
OPTIMISTIC_READS = 2_000  # then read under the writer lock (which also repairs a dead writer's slot)
LOCK_BACKOFF = (0.0001, 0.01)  # first and largest sleep while another process holds the lock
LOCK_ATTEMPTS = 600  # about 5 s of waiting before CaseMemoryBusy
_RETRY = object()
_OVERWRITES_AT = COUNTERS_AT
_REJECTED_AT = {reason: COUNTERS_AT + 8 * (1 + i) for i, reason in enumerate(REJECTION_REASONS)}
_HEAD = SLOT_HEADER  # generation, length, checksum, key length, key
# Bound once: these run on every read.
_read_u32 = U32.unpack_from
_read_generation = GENERATION.unpack_from
_read_gsc = struct.Struct("<QIQ").unpack_from  # generation, length, checksum
_write_generation = GENERATION.pack_into
_write_head = SLOT_HEADER.pack_into
_SEQ = WRITE_SEQ_AT // 4  # the write seqlock's word in the header view
_flock = fcntl.flock
_TRY_EXCLUSIVE = fcntl.LOCK_EX | fcntl.LOCK_NB
_UNLOCK = fcntl.LOCK_UN
_TAG_AT = KEY_AT - 2  # the tagged key (length + padded bytes) runs from here to the payload
_TAG_END = SLOT_HEADER_BYTES - (KEY_AT + MAX_KEY_BYTES)  # padding between the key and the payload


@dataclass(frozen=True)
class CaseMemoryHandle:
    """What a worker process needs to open the store: the segment's path (picklable)."""

    path: str


class CaseMemory:
    """Store, get and release cases by id in a shared-memory segment."""

    def __init__(self, segment: MappedSegment, layout: SegmentLayout, *, owner: bool) -> None:
        self._segment = segment
        self._buf = segment.mapping
        self._fd = segment.fd
        self._layout = layout
        self._table = SlotTable(segment.mapping, layout)
        self._limit = layout.payload_limit
        self._slots_at = layout.slots_at
        self._slot_bytes = layout.slot_bytes
        self._owner = owner
        self._thread_lock = threading.Lock()  # flock does not exclude threads sharing our descriptor
        self._header = memoryview(segment.mapping)[:HEADER_BYTES].cast("I")  # the write seqlock, read every op
        self._seq = 0  # the odd write-seqlock value while we hold the lock
        self._closed = False
        _open_stores.add(self)

    @classmethod
    def create(cls, slot_count: int, slot_bytes: int, directory: Path = SHM_DIR, tag: str = "untagged") -> CaseMemory:
        """A new, empty store; first removes segments whose owner process died. `tag`: see `folder_tag`."""
        layout = SegmentLayout(slot_count, slot_bytes)
        if layout.payload_limit < 1:
            raise CaseMemoryError(f"a {slot_bytes}-byte slot leaves no room after its "
                                  f"{SLOT_HEADER_BYTES}-byte header: raise case_memory_mb")
        reclaim_abandoned(directory)
        segment = create_segment(layout.total_bytes, directory, tag)
        GEOMETRY.pack_into(segment.mapping, 0, MAGIC, LAYOUT_VERSION, slot_count, slot_bytes,
                           layout.index_capacity, os.getpid())
        store = cls(segment, layout, owner=True)
        store._table.format()
        return store

    @classmethod
    def from_settings(cls, settings: Settings, data_dir: Path | None = None, directory: Path = SHM_DIR) -> CaseMemory:
        """A store sized by `max_cases_in_memory` and `case_slot_bytes`, findable by `running(data_dir)`."""
        tag = folder_tag(data_dir) if data_dir is not None else "untagged"
        return cls.create(settings.max_cases_in_memory, settings.case_slot_bytes, directory, tag)

    @classmethod
    def running(cls, data_dir: Path, directory: Path = SHM_DIR) -> tuple[int, CaseMemory] | None:
        """The store of the longest-running medops on this data folder, attached, with its PID (None: none runs)."""
        for owner, path in running_segments(folder_tag(data_dir), directory):
            try:
                return owner.pid, cls.attach(CaseMemoryHandle(str(path)))
            except SegmentUnavailable:
                continue  # it stopped between the listing and the open
        return None

    @classmethod
    def attach(cls, handle: CaseMemoryHandle) -> CaseMemory:
        """Open a store another process created (it stays the owner)."""
        segment = open_segment(Path(handle.path))
        try:
            magic, version, slot_count, slot_bytes, capacity, _ = GEOMETRY.unpack_from(segment.mapping, 0)
            layout = SegmentLayout(slot_count, slot_bytes)
            if (magic, version) != (MAGIC, LAYOUT_VERSION) or capacity != layout.index_capacity \
                    or layout.total_bytes > len(segment.mapping):
                raise SegmentUnavailable(f"{handle.path} is not a medops case memory of this version")
        except Exception:
            segment.close()
            raise
        return cls(segment, layout, owner=False)

    @property
    def handle(self) -> CaseMemoryHandle:
        """Pass this to a worker process, which opens the store with `CaseMemory.attach`."""
        return CaseMemoryHandle(str(self._segment.path))

    @property
    def payload_limit(self) -> int:
        """Largest encoded case a slot takes, in bytes."""
        return self._limit

    def store(self, case_id: str, case: dict[str, Any]) -> None:
        """Put a case in memory; an id already there is overwritten in its own slot."""
        try:  # `_key` inlined: store, get and release are the hot path
            key, h, tagged = _key_parts(case_id)
        except (TypeError, ValueError):
            self._count_rejection("invalid_id")
            raise InvalidCaseId(case_id, MAX_KEY_BYTES) from None
        payload = self._encoded(case_id, case, locked=False)
        digest = checksum(payload)
        self._lock()
        try:
            self._put(case_id, key, h, tagged, payload, digest)
        finally:
            self._unlock()

    def update(self, case_id: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> dict[str, Any]:
        """Store `change(current case, or None)` and return it, holding the writer lock from read to write.

        Two processes adding to one case this way never lose each other's additions, as a
        `get` then `store` could. `change` runs under the lock: keep it to building the new case.
        """
        key, h, tagged = self._key(case_id, count=True)
        self._lock()
        try:
            found = self._read(h, tagged, locked=True)
            if found is _RETRY:
                raise CaseMemoryError(f"case {case_id!r} fails its checksum in {self._segment.path}; store it again")
            case = change(None if found is None else decode_case(found))  # type: ignore[arg-type]
            payload = self._encoded(case_id, case, locked=True)
            self._put(case_id, key, h, tagged, payload, checksum(payload))
        finally:
            self._unlock()
        return case

    def get(self, case_id: str) -> dict[str, Any]:
        """The case stored under this id (a fresh dict); UnknownCase if there is none."""
        try:  # `_key_or_refuse` inlined: store, get and release are the hot path
            _, h, tagged = _key_parts(case_id)
        except (TypeError, ValueError):
            raise InvalidCaseId(case_id, MAX_KEY_BYTES) from None
        found = self._read(h, tagged)
        if found is _RETRY:
            found = self._read_patiently(case_id, h, tagged)
        if found is None:
            raise UnknownCase(case_id)
        return decode_case(found)  # type: ignore[arg-type]

    def release(self, case_id: str) -> None:
        """Free the case's slot; UnknownCase if there is none."""
        try:  # `_key_or_refuse` inlined: store, get and release are the hot path
            _, h, tagged = _key_parts(case_id)
        except (TypeError, ValueError):
            raise InvalidCaseId(case_id, MAX_KEY_BYTES) from None
        buf = self._buf
        self._lock()
        try:
            slot = self._table.discard(h, tagged)
            if slot < 0:
                raise UnknownCase(case_id)
            base = self._slots_at + slot * self._slot_bytes
            generation = _read_generation(buf, base)[0]
            _write_head(buf, base, generation + 1, 0, 0, 0, b"")
            _write_generation(buf, base, generation + 2)
        finally:
            self._unlock()

    def __contains__(self, case_id: object) -> bool:
        try:
            self.get(case_id)  # type: ignore[arg-type]
        except (UnknownCase, InvalidCaseId):
            return False
        return True

    def snapshot(self) -> SlotsSnapshot:
        """Slots used and free, bytes, largest case, overwrites, rejections, occupied slots."""
        lengths = self._table.lengths()
        occupied = tuple(slot for slot, size in enumerate(lengths) if size)
        overwrites, *rejected = COUNTERS.unpack_from(self._buf, COUNTERS_AT)
        return SlotsSnapshot(
            total=self._layout.slot_count, used=len(occupied), slot_bytes=self._slot_bytes,
            bytes_used=sum(lengths), largest_case=max(lengths, default=0), overwrites=overwrites,
            rejections=tuple(zip(REJECTION_REASONS, rejected, strict=True)), occupied=occupied,
            segment=str(self._segment.path))

    def close(self) -> None:
        """Unmap; the owner also unlinks the segment. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _open_stores.discard(self)
        self._table.close()
        self._header.release()
        self._segment.close()
        if self._owner:
            self._segment.path.unlink(missing_ok=True)

    def __enter__(self) -> CaseMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, case_id: str, key: bytes, h: int, tagged: bytes, payload: bytes, digest: int) -> None:
        """Write an encoded case into its slot, or a free one (caller holds the writer lock)."""
        buf, size = self._buf, len(payload)
        slot, fresh = self._table.claim(h, tagged, size)
        if slot < 0:
            self._bump(_REJECTED_AT["no_free_slot"])
            raise NoFreeSlot(case_id, self._table.used, self._layout.slot_count)
        if not fresh:
            self._bump(_OVERWRITES_AT)
        base = self._slots_at + slot * self._slot_bytes
        generation = _read_generation(buf, base)[0]
        # Odd generation and the new header in one write; the even one after the payload.
        _write_head(buf, base, generation + 1, size, digest, len(key), key)
        start = base + SLOT_HEADER_BYTES
        buf[start:start + size] = payload
        _write_generation(buf, base, generation + 2)

    # -- reading ---------------------------------------------------------------------------------

    def _read(self, h: int, tagged: bytes, *, locked: bool = False) -> object:
        """One optimistic read: the payload, None for a confirmed miss, or _RETRY.

        `locked`: we hold the writer lock (so the write seqlock is ours, odd, and nothing moves).
        """
        header = self._header
        seq = header[_SEQ]
        slot = self._table.find(h, tagged)
        if slot < 0:
            # A miss counts only if no writer was inside while we probed the index.
            if locked or (not seq & 1 and header[_SEQ] == seq):
                return None
            return _RETRY
        # A hit needs no segment seqlock: the slot's own generation and key vouch for it.
        buf = self._buf
        base = self._slots_at + slot * self._slot_bytes
        generation, size, digest = _read_gsc(buf, base)
        if generation & 1 or size > self._limit:
            return _RETRY
        start = base + SLOT_HEADER_BYTES
        payload = buf[start:start + size]
        if buf[base + _TAG_AT:start - _TAG_END] != tagged or _read_generation(buf, base)[0] != generation \
                or checksum(payload) != digest:
            return _RETRY
        return payload

    def _read_patiently(self, case_id: str, h: int, tagged: bytes) -> object:
        """Retry a read a writer got in the way of; at last read under the writer lock."""
        for attempt in range(OPTIMISTIC_READS):
            found = self._read(h, tagged)
            if found is not _RETRY:
                return found
            if attempt >= SPIN_READS:
                time.sleep(0)
        # Writers keep the slot busy (or one died mid-write): read while holding the lock.
        self._lock()
        try:
            found = self._read(h, tagged, locked=True)
        finally:
            self._unlock()
        if found is _RETRY:
            raise CaseMemoryError(f"case {case_id!r} fails its checksum in {self._segment.path}; store it again")
        return found

    # -- writer lock -----------------------------------------------------------------------------

    def _lock(self) -> None:
        """Take the thread lock and the segment's flock; repair what a dead writer left."""
        self._thread_lock.acquire()
        try:
            _flock(self._fd, _TRY_EXCLUSIVE)
        except BlockingIOError:
            try:
                self._wait_for_lock()
            except BaseException:
                self._thread_lock.release()
                raise
        header = self._header
        seq = header[_SEQ]
        self._seq = header[_SEQ] = seq | 1  # already odd: the last writer died inside
        if seq & 1:
            try:
                self._recover()
            except BaseException:
                _flock(self._fd, fcntl.LOCK_UN)
                self._thread_lock.release()
                raise

    def _unlock(self) -> None:
        self._header[_SEQ] = (self._seq + 1) & 0xFFFF_FFFF
        _flock(self._fd, _UNLOCK)
        self._thread_lock.release()

    def _wait_for_lock(self) -> None:
        # Polling with backoff, not a blocking flock: a stopped worker must not hang the event loop.
        pause, longest = LOCK_BACKOFF
        for _ in range(LOCK_ATTEMPTS):
            time.sleep(pause)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pause = min(pause * 2, longest)
        raise CaseMemoryBusy(str(self._segment.path))

    def _recover(self) -> None:
        """A writer died mid-change: keep every slot whose header and checksum agree, free the rest."""
        buf = self._buf
        kept: list[tuple[int, bytes, int]] = []
        seen: set[bytes] = set()
        for slot in range(self._layout.slot_count):
            base = self._slots_at + slot * self._slot_bytes
            generation, size, digest, key_length, key = _HEAD.unpack_from(buf, base)
            key = key[:key_length]
            start = base + SLOT_HEADER_BYTES
            whole = (not generation & 1 and 0 < size <= self._limit and 0 < key_length <= MAX_KEY_BYTES
                     and key not in seen and checksum(buf[start:start + size]) == digest)
            if whole:
                kept.append((slot, key, size))
                seen.add(key)
            elif size or key_length or generation & 1:
                GENERATION.pack_into(buf, base, (generation | 1) + 1)
                SLOT_BODY.pack_into(buf, base + 8, 0, 0, 0, b"")
        self._table.rebuild(kept)
        log.warning("case memory %s: a writer died mid-change; recovered %d case(s), freed the rest",
                    self._segment.path.name, len(kept))

    # -- bookkeeping -----------------------------------------------------------------------------

    def _key(self, case_id: str, *, count: bool) -> tuple[bytes, int, bytes]:
        """Key bytes, hash and tagged form of a case id (InvalidCaseId, counted if `count`, if it cannot be a key)."""
        try:
            return _key_or_refuse(case_id)
        except InvalidCaseId:
            if count:
                self._count_rejection("invalid_id")
            raise

    def _encoded(self, case_id: str, case: dict[str, Any], *, locked: bool) -> bytes:
        """The case's bytes; a case JSON cannot carry or no slot holds is refused and counted.

        `locked`: the caller holds the writer lock, so the count is bumped directly.
        """
        try:
            payload = encode_case(case)
        except EncodeError:
            self._count_rejection("not_encodable", locked=locked)
            raise CaseNotEncodable(case_id) from None
        if len(payload) > self._limit:
            self._count_rejection("too_large", locked=locked)
            raise CaseTooLarge(case_id, len(payload), self._limit)
        return payload

    def _bump(self, at: int) -> None:
        """Add one to a counter (caller holds the lock)."""
        U64.pack_into(self._buf, at, U64.unpack_from(self._buf, at)[0] + 1)

    def _count_rejection(self, reason: str, *, locked: bool = False) -> None:
        """Count a refusal (taking the writer lock unless the caller holds it)."""
        if locked:
            self._bump(_REJECTED_AT[reason])
            return
        self._lock()
        try:
            self._bump(_REJECTED_AT[reason])
        finally:
            self._unlock()

    def _reopen_after_fork(self) -> None:
        """In a forked child: own file description (so flock excludes the parent) and a fresh thread lock."""
        fd = os.open(f"/proc/self/fd/{self._fd}", os.O_RDWR | os.O_CLOEXEC)
        os.close(self._fd)
        self._fd = self._segment.fd = fd
        self._thread_lock = threading.Lock()
        self._owner = False


def check_case_id(case_id: str) -> None:
    """Refuse an id no slot can hold (not a string, empty, or over MAX_KEY_BYTES encoded) with InvalidCaseId."""
    _key_or_refuse(case_id)


def _key_or_refuse(case_id: str) -> tuple[bytes, int, bytes]:
    try:
        return _key_parts(case_id)
    except (TypeError, ValueError):
        raise InvalidCaseId(case_id, MAX_KEY_BYTES) from None


@functools.lru_cache(maxsize=4_096)
def _key_parts(case_id: str) -> tuple[bytes, int, bytes]:
    # Cached: the same ids come back for store, get and release, and encoding + hashing cost more than a lookup.
    if not isinstance(case_id, str):
        raise TypeError(case_id)
    key = case_id.encode()
    if not 0 < len(key) <= MAX_KEY_BYTES:
        raise ValueError(case_id)
    return key, key_hash(key), tagged_key(key)


_open_stores: weakref.WeakSet[CaseMemory] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        store._reopen_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
