"""The slot allocator inside a segment: a hash index from case id to slot, and a free list.

Both live in the shared buffer, so any process that maps the segment finds a
case by id in O(1) and a writer takes or gives back a slot in O(1). Writers
call the mutating methods under the segment's writer lock, inside its seqlock;
readers only call `find`, and validate what it returns with that seqlock and
the slot's generation (see `CaseMemory.get`).
"""

from __future__ import annotations

import mmap
import struct
import zlib
from array import array
from collections.abc import Iterable

from core.case_layout import (
    FREE,
    FREE_AT,
    I32,
    INDEX_ENTRY,
    KEY_AT,
    MAX_KEY_BYTES,
    NO_SLOT,
    U32,
    SegmentLayout,
)

KEY_FIELD = struct.Struct(f"<H{MAX_KEY_BYTES}s")  # key length, key padded with zeros: as in a slot header


def key_hash(key: bytes) -> int:
    """A hash of a case id that every process computes alike (`hash()` is salted per process)."""
    return zlib.crc32(key)


def tagged_key(key: bytes) -> bytes:
    """The key exactly as a slot header stores it (length, padded bytes), so one comparison matches it."""
    return KEY_FIELD.pack(len(key), key)


class SlotTable:
    """Hash index (open addressing, linear probing) plus free list over a writable buffer."""

    def __init__(self, buffer: mmap.mmap | bytearray, layout: SegmentLayout) -> None:
        self._buf = buffer
        self._layout = layout
        self._capacity = layout.index_capacity
        self._mask = self._capacity - 1
        self._index_at = layout.index_at
        self._links_at = layout.links_at
        self._lengths_at = layout.lengths_at
        self._slots_at = layout.slots_at
        self._slot_bytes = layout.slot_bytes
        self._slot_count = layout.slot_count

    def format(self) -> None:
        """Empty index, every slot free (chained in order), none in use."""
        buf, links = self._buf, self._links_at
        end = self._index_at + self._capacity * INDEX_ENTRY.size
        buf[self._index_at:end] = bytes(end - self._index_at)
        for slot in range(self._slot_count):
            nxt = slot + 1 if slot + 1 < self._slot_count else NO_SLOT
            I32.pack_into(buf, links + 4 * slot, nxt)
        end = self._lengths_at + 4 * self._slot_count
        buf[self._lengths_at:end] = bytes(end - self._lengths_at)
        FREE.pack_into(buf, FREE_AT, 0 if self._slot_count else NO_SLOT, 0)

    @property
    def used(self) -> int:
        """Slots holding a case."""
        return int(FREE.unpack_from(self._buf, FREE_AT)[1])

    def find(self, h: int, tagged: bytes) -> int:
        """The slot holding the key (`tagged` in its header, hash `h`), or NO_SLOT."""
        return self._locate(h, tagged)[1] - 1

    def claim(self, h: int, tagged: bytes, size: int) -> tuple[int, bool]:
        """The key's slot, or a free one now indexed under it: (slot, fresh); (NO_SLOT, True) when full.

        A fresh slot is indexed before the caller fills it: a reader that finds it early
        sees another key (or none) in its header and retries.
        """
        buf = self._buf
        position, slot_plus_one = self._locate(h, tagged)
        if slot_plus_one:
            slot, fresh = slot_plus_one - 1, False
        else:
            head, used = FREE.unpack_from(buf, FREE_AT)
            if head == NO_SLOT:
                return NO_SLOT, True
            FREE.pack_into(buf, FREE_AT, I32.unpack_from(buf, self._links_at + 4 * head)[0], used + 1)
            INDEX_ENTRY.pack_into(buf, self._index_at + 8 * position, h, head + 1)
            slot, fresh = head, True
        U32.pack_into(buf, self._lengths_at + 4 * slot, size)
        return slot, fresh

    def discard(self, h: int, tagged: bytes) -> int:
        """Unindex the key and free its slot; return the slot (NO_SLOT if the key is absent)."""
        buf = self._buf
        position, slot_plus_one = self._locate(h, tagged)
        if not slot_plus_one:
            return NO_SLOT
        self._unindex(position)
        slot = slot_plus_one - 1
        head, used = FREE.unpack_from(buf, FREE_AT)
        I32.pack_into(buf, self._links_at + 4 * slot, head)
        FREE.pack_into(buf, FREE_AT, slot, used - 1)
        U32.pack_into(buf, self._lengths_at + 4 * slot, 0)
        return slot

    def _locate(self, h: int, tagged: bytes) -> tuple[int, int]:
        """(index position, slot + 1) of the key, or (first empty position on its probe path, 0)."""
        buf, mask, at, unpack = self._buf, self._mask, self._index_at, INDEX_ENTRY.unpack_from
        width = len(tagged)
        i = h & mask
        for _ in range(self._capacity):
            entry_hash, slot_plus_one = unpack(buf, at + 8 * i)
            if not slot_plus_one:
                return i, 0
            if entry_hash == h and slot_plus_one <= self._slot_count:  # a racing reader may see a torn entry
                base = self._slots_at + (slot_plus_one - 1) * self._slot_bytes + KEY_AT - 2
                if buf[base:base + width] == tagged:
                    return i, slot_plus_one
            i = (i + 1) & mask
        return i, 0  # only a reader racing a writer gets here; it retries

    def lengths(self) -> array[int]:
        """A copy of every slot's case size in slot order (0 for a free slot)."""
        return array("I", self._buf[self._lengths_at:self._lengths_at + 4 * self._slot_count])

    def _unindex(self, i: int) -> None:
        """Empty index position i, shifting later entries back so no probe path breaks."""
        buf, mask, at, unpack, pack = self._buf, self._mask, self._index_at, INDEX_ENTRY.unpack_from, \
            INDEX_ENTRY.pack_into
        j = i
        while True:
            j = (j + 1) & mask
            entry_hash, slot_plus_one = unpack(buf, at + 8 * j)
            if not slot_plus_one:
                break
            home = entry_hash & mask
            # The entry at j may move to the hole at i only if its home is not cyclically in (i, j].
            if (i < j and (home <= i or home > j)) or (i > j and home <= i and home > j):
                pack(buf, at + 8 * i, entry_hash, slot_plus_one)
                i = j
        pack(buf, at + 8 * i, 0, 0)

    def rebuild(self, occupied: Iterable[tuple[int, bytes, int]]) -> None:
        """Reset index and free list to exactly `occupied` (slot, key, length); for crash recovery."""
        self.format()
        taken = {slot: (key, length) for slot, key, length in occupied}
        buf, links = self._buf, self._links_at
        free = [slot for slot in range(self._slot_count) if slot not in taken]
        for here, nxt in zip(free, [*free[1:], NO_SLOT], strict=False):  # no free slot: nothing to link
            I32.pack_into(buf, links + 4 * here, nxt)
        FREE.pack_into(buf, FREE_AT, free[0] if free else NO_SLOT, len(taken))
        mask, at = self._mask, self._index_at
        for slot, (key, length) in taken.items():
            U32.pack_into(buf, self._lengths_at + 4 * slot, length)
            h = key_hash(key)
            i = h & mask
            while INDEX_ENTRY.unpack_from(buf, at + 8 * i)[1]:
                i = (i + 1) & mask
            INDEX_ENTRY.pack_into(buf, at + 8 * i, h, slot + 1)
