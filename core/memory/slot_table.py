"""The slot allocator inside a segment: a hash index from case id to slot, and a free list.

Both live in the shared buffer, so any process that maps the segment finds a
case by id in O(1) and a writer takes or gives back a slot in O(1). Writers
call the mutating methods under the segment's writer lock, inside its seqlock;
readers only call `find`, and validate what it returns with that seqlock and
the slot's generation (see `CaseMemory.get`).

The index, links and counts are 4-byte words read and written through one
memoryview cast to native u32/i32 (a single indexing operation each, several
times cheaper than `struct` calls on this path); the layout is little-endian,
so this module refuses to load on a big-endian machine.
"""

from __future__ import annotations

import mmap
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable

from medops.core.memory.layout import FREE_AT, KEY_AT, MAX_KEY_BYTES, NO_SLOT, SegmentLayout

if sys.byteorder != "little":  # the views below are native-endian; the segment layout is little-endian
    raise ImportError("case memory needs a little-endian CPU")

KEY_FIELD = struct.Struct(f"<H{MAX_KEY_BYTES}s")  # key length, key padded with zeros: as in a slot header
TAG_BYTES = KEY_FIELD.size
HEAD_WORD = FREE_AT // 4  # i32 first free slot
USED_WORD = HEAD_WORD + 1  # u32 slots in use


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
        self._slot_bytes = layout.slot_bytes
        self._slot_count = layout.slot_count
        # Word offsets (the header, index, links and lengths all sit before the slots, 4-aligned).
        self._index = layout.index_at // 4  # entry i: words index + 2i (key hash), index + 2i + 1 (slot + 1)
        self._links = layout.links_at // 4
        self._lengths = layout.lengths_at // 4
        self._tag_at = layout.slots_at + KEY_AT - 2  # the tagged key of slot s starts at tag_at + s * slot_bytes
        meta = memoryview(buffer)[:layout.slots_at]
        self._u32 = meta.cast("I")
        self._i32 = meta.cast("i")
        meta.release()

    def close(self) -> None:
        """Drop the views on the buffer (so an mmap can be closed)."""
        self._u32.release()
        self._i32.release()

    def format(self) -> None:
        """Empty index, every slot free (chained in order), none in use."""
        buf, u32, i32, count = self._buf, self._u32, self._i32, self._slot_count
        start, end = 4 * self._index, 4 * (self._index + 2 * self._capacity)
        buf[start:end] = bytes(end - start)
        for slot in range(count):
            i32[self._links + slot] = slot + 1 if slot + 1 < count else NO_SLOT
        start, end = 4 * self._lengths, 4 * (self._lengths + count)
        buf[start:end] = bytes(end - start)
        i32[HEAD_WORD] = 0 if count else NO_SLOT
        u32[USED_WORD] = 0

    @property
    def used(self) -> int:
        """Slots holding a case."""
        return self._u32[USED_WORD]

    def find(self, h: int, tagged: bytes) -> int:
        """The slot holding the key (`tagged` in its header, hash `h`), or NO_SLOT.

        Safe for a reader racing a writer: it may see a torn or moving entry, but then
        a key that does not match (or a miss the caller re-checks), never a loop.
        """
        u32, mask, index = self._u32, self._mask, self._index
        i = h & mask
        left = self._capacity  # a bound (not `range`, which costs more than a whole hit here)
        while left:
            at = index + 2 * i
            slot_plus_one = u32[at + 1]
            if not slot_plus_one:
                return NO_SLOT
            if u32[at] == h and slot_plus_one <= self._slot_count:
                base = self._tag_at + (slot_plus_one - 1) * self._slot_bytes
                if self._buf[base:base + TAG_BYTES] == tagged:
                    return slot_plus_one - 1
            i = (i + 1) & mask
            left -= 1
        return NO_SLOT  # only a reader racing a writer gets here; it retries

    def claim(self, h: int, tagged: bytes, size: int) -> tuple[int, bool]:
        """The key's slot, or a free one now indexed under it: (slot, fresh); (NO_SLOT, True) when full.

        A fresh slot is indexed before the caller fills it: a reader that finds it early
        sees another key (or none) in its header and retries.
        """
        u32, mask, index = self._u32, self._mask, self._index
        i = h & mask
        while True:  # the index is at most half full: an empty position ends every probe
            at = index + 2 * i
            slot = u32[at + 1] - 1
            if slot < 0:
                break
            if u32[at] == h:
                base = self._tag_at + slot * self._slot_bytes
                if self._buf[base:base + TAG_BYTES] == tagged:
                    u32[self._lengths + slot] = size
                    return slot, False
            i = (i + 1) & mask
        i32 = self._i32
        slot = i32[HEAD_WORD]
        if slot == NO_SLOT:
            return NO_SLOT, True
        i32[HEAD_WORD] = i32[self._links + slot]
        u32[USED_WORD] += 1
        u32[at] = h  # the hash before the slot: a reader never pairs the new slot with a stale hash
        u32[at + 1] = slot + 1
        u32[self._lengths + slot] = size
        return slot, True

    def discard(self, h: int, tagged: bytes) -> int:
        """Unindex the key and free its slot; return the slot (NO_SLOT if the key is absent)."""
        u32, mask, index = self._u32, self._mask, self._index
        i = h & mask
        while True:
            at = index + 2 * i
            slot = u32[at + 1] - 1
            if slot < 0:
                return NO_SLOT
            if u32[at] == h:
                base = self._tag_at + slot * self._slot_bytes
                if self._buf[base:base + TAG_BYTES] == tagged:
                    break
            i = (i + 1) & mask
        if u32[index + 2 * ((i + 1) & mask) + 1]:
            self._unindex(i)  # later entries may have to shift back
        else:
            u32[at + 1] = 0  # the common case: nothing follows, just empty the position
            u32[at] = 0
        i32 = self._i32
        i32[self._links + slot] = i32[HEAD_WORD]
        i32[HEAD_WORD] = slot
        u32[USED_WORD] -= 1
        u32[self._lengths + slot] = 0
        return slot

    def lengths(self) -> array[int]:
        """A copy of every slot's case size in slot order (0 for a free slot)."""
        return array("I", self._buf[4 * self._lengths:4 * (self._lengths + self._slot_count)])

    def _unindex(self, i: int) -> None:
        """Empty index position i, shifting later entries back so no probe path breaks."""
        u32, mask, index = self._u32, self._mask, self._index
        j = i
        while True:
            j = (j + 1) & mask
            at = index + 2 * j
            slot_plus_one = u32[at + 1]
            if not slot_plus_one:
                break
            entry_hash = u32[at]
            home = entry_hash & mask
            # The entry at j may move to the hole at i only if its home is not cyclically in (i, j].
            if (i < j and (home <= i or home > j)) or (i > j and home <= i and home > j):
                hole = index + 2 * i
                u32[hole] = entry_hash
                u32[hole + 1] = slot_plus_one
                i = j
        hole = index + 2 * i
        u32[hole + 1] = 0  # empty first: a reader never pairs this slot with the hash cleared next
        u32[hole] = 0

    def rebuild(self, occupied: Iterable[tuple[int, bytes, int]]) -> None:
        """Reset index and free list to exactly `occupied` (slot, key, length); for crash recovery."""
        self.format()
        taken = {slot: (key, length) for slot, key, length in occupied}
        u32, i32 = self._u32, self._i32
        free = [slot for slot in range(self._slot_count) if slot not in taken]
        for here, nxt in zip(free, [*free[1:], NO_SLOT], strict=False):  # no free slot: nothing to link
            i32[self._links + here] = nxt
        i32[HEAD_WORD] = free[0] if free else NO_SLOT
        u32[USED_WORD] = len(taken)
        mask = self._mask
        for slot, (key, length) in taken.items():
            u32[self._lengths + slot] = length
            h = key_hash(key)
            i = h & mask
            while u32[self._index + 2 * i + 1]:
                i = (i + 1) & mask
            u32[self._index + 2 * i] = h
            u32[self._index + 2 * i + 1] = slot + 1
