"""Byte layout of a case-memory segment, shared by every process that maps it.

    header (128 B) | hash index | free-list links | slot lengths | slots

The header carries the geometry, so a worker that attaches needs only the
segment's path. Everything is little-endian and at fixed offsets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"MEDOPSCM"
LAYOUT_VERSION = 2  # 2: 64-bit xxh3 checksum (1 had CRC-32)
MAX_KEY_BYTES = 64
NO_SLOT = -1

# Header: magic, version, slot_count, slot_bytes, index_capacity, owner_pid.
GEOMETRY = struct.Struct("<8sIIIII")
# Mutable header words, each written only under the writer lock.
WRITE_SEQ_AT = 32  # u32 segment seqlock: odd while a writer is inside (so also the mark a dead writer leaves)
FREE_AT = 40  # i32 first free slot, u32 slots in use
COUNTERS_AT = 48  # u64 each, in REJECTION_REASONS order after overwrites
HEADER_BYTES = 128

U32 = struct.Struct("<I")
I32 = struct.Struct("<i")
REJECTION_REASONS = ("too_large", "no_free_slot", "not_encodable", "invalid_id")
COUNTERS = struct.Struct("<" + "Q" * (1 + len(REJECTION_REASONS)))  # overwrites, then rejections
U64 = struct.Struct("<Q")

# Index entry: u32 hash of the key, u32 slot + 1 (0 marks an empty entry).
INDEX_ENTRY = struct.Struct("<II")

# Slot header: u64 generation (odd while written), then u32 length, u64 checksum, key length, key.
GENERATION = struct.Struct("<Q")
SLOT_HEADER = struct.Struct(f"<QIQH{MAX_KEY_BYTES}s")
SLOT_BODY = struct.Struct(f"<IQH{MAX_KEY_BYTES}s")  # the header after the generation
SLOT_HEADER_BYTES = 88  # SLOT_HEADER.size (86) rounded up to 8
KEY_AT = 22  # offset of the key bytes within a slot


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class SegmentLayout:
    """Where each region starts for a given slot count and slot size."""

    slot_count: int
    slot_bytes: int

    @property
    def index_capacity(self) -> int:
        """A power of two at least twice the slot count: probes stay short."""
        capacity = 1
        while capacity < 2 * self.slot_count:
            capacity *= 2
        return capacity

    @property
    def index_at(self) -> int:
        """Start of the hash index (after the header)."""
        return HEADER_BYTES

    @property
    def links_at(self) -> int:
        """Start of the free list's next-slot links (one i32 a slot)."""
        return self.index_at + self.index_capacity * INDEX_ENTRY.size

    @property
    def lengths_at(self) -> int:
        """Start of the case sizes (one u32 a slot, 0 when free), read by the snapshot."""
        return self.links_at + self.slot_count * I32.size

    @property
    def slots_at(self) -> int:
        """Start of the first slot, cache-line aligned."""
        return _align(self.lengths_at + self.slot_count * U32.size, 64)

    @property
    def total_bytes(self) -> int:
        """Size of the whole segment."""
        return self.slots_at + self.slot_count * self.slot_bytes

    @property
    def payload_limit(self) -> int:
        """Largest encoded case one slot holds."""
        return self.slot_bytes - SLOT_HEADER_BYTES
