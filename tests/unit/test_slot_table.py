"""The slot allocator and the whole store against a dict, as hypothesis state machines."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from medops.core.memory.case_memory import CaseMemory
from medops.core.memory.errors import NoFreeSlot, UnknownCase
from medops.core.memory.layout import KEY_AT, NO_SLOT, SegmentLayout
from medops.core.memory.slot_table import SlotTable, key_hash, tagged_key

SLOTS = 5
KEYS = st.sampled_from([f"k{i}" for i in range(9)])
# Few distinct hashes, homed at the end of the 16-entry index (14, 15, 15, 0): keys collide, probe paths
# wrap around to the start, and deletions shift entries back across the wrap.
HASHES = st.sampled_from([14, 15, 31, 16])


class SlotTableMachine(RuleBasedStateMachine):
    """claim / discard / find on a bytearray segment, checked against a dict of key -> slot."""

    @initialize(slot_count=st.integers(min_value=1, max_value=SLOTS))
    def make_table(self, slot_count: int) -> None:
        self.layout = SegmentLayout(slot_count, 128)
        self.buf = bytearray(self.layout.total_bytes)
        self.table = SlotTable(self.buf, self.layout)
        self.table.format()
        self.model: dict[str, int] = {}
        self.hash_of: dict[str, int] = {}

    def _hash(self, key: str, h: int) -> int:
        return self.hash_of.setdefault(key, h)  # a key's hash never changes

    @rule(key=KEYS, h=HASHES, size=st.integers(min_value=1, max_value=40))
    def claim(self, key: str, h: int, size: int) -> None:
        h = self._hash(key, h)
        tagged = tagged_key(key.encode())
        slot, fresh = self.table.claim(h, tagged, size)
        if key in self.model:
            assert (slot, fresh) == (self.model[key], False)
        elif len(self.model) == self.layout.slot_count:
            assert slot == NO_SLOT
            return
        else:
            assert fresh and slot not in self.model.values() and 0 <= slot < self.layout.slot_count
            # The store writes the key into the slot header; do the same.
            at = self.layout.slots_at + slot * self.layout.slot_bytes + KEY_AT - 2
            self.buf[at:at + len(tagged)] = tagged
            self.model[key] = slot

    @rule(key=KEYS, h=HASHES)
    def discard(self, key: str, h: int) -> None:
        h = self._hash(key, h)
        slot = self.table.discard(h, tagged_key(key.encode()))
        assert slot == self.model.pop(key, NO_SLOT)
        if slot != NO_SLOT:
            at = self.layout.slots_at + slot * self.layout.slot_bytes + KEY_AT - 2
            self.buf[at:at + 2 + 64] = bytes(66)

    @rule(key=KEYS, h=HASHES)
    def find(self, key: str, h: int) -> None:
        h = self._hash(key, h)
        assert self.table.find(h, tagged_key(key.encode())) == self.model.get(key, NO_SLOT)

    @precondition(lambda self: self.model)
    @rule()
    def rebuild_keeps_every_key(self) -> None:
        occupied = [(slot, key.encode(), 1) for key, slot in self.model.items()]
        self.table.rebuild(occupied)
        # rebuild indexes by the real hash of each key: use real hashes from here on.
        self.hash_of = {f"k{i}": key_hash(f"k{i}".encode()) for i in range(9)}

    @invariant()
    def counts_agree(self) -> None:
        if hasattr(self, "table"):
            assert self.table.used == len(self.model)
            assert sum(1 for n in self.table.lengths() if n) == len(self.model)


class CaseMemoryMachine(RuleBasedStateMachine):
    """store / get / release on a real segment, checked against a dict of id -> case."""

    def __init__(self) -> None:
        super().__init__()
        self.cases = CaseMemory.create(SLOTS, 1024)
        self.model: dict[str, dict[str, Any]] = {}

    @rule(case_id=KEYS, value=st.integers(min_value=-(2**63), max_value=2**63 - 1))  # JSON via orjson: 64-bit
    def store(self, case_id: str, value: int) -> None:
        case = {"id": case_id, "value": value}
        if case_id not in self.model and len(self.model) == SLOTS:
            try:
                self.cases.store(case_id, case)
            except NoFreeSlot:
                return
            raise AssertionError("a full store took a new case")
        self.cases.store(case_id, case)
        self.model[case_id] = case

    @rule(case_id=KEYS)
    def get(self, case_id: str) -> None:
        try:
            assert self.cases.get(case_id) == self.model[case_id]
        except UnknownCase:
            assert case_id not in self.model

    @rule(case_id=KEYS)
    def release(self, case_id: str) -> None:
        try:
            self.cases.release(case_id)
        except UnknownCase:
            assert case_id not in self.model
        else:
            del self.model[case_id]

    @invariant()
    def snapshot_agrees(self) -> None:
        snapshot = self.cases.snapshot()
        assert snapshot.used == len(self.model) == len(snapshot.occupied)

    def teardown(self) -> None:
        self.cases.close()


TestSlotTable = SlotTableMachine.TestCase
TestSlotTable.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestCaseMemoryAgainstADict = CaseMemoryMachine.TestCase
TestCaseMemoryAgainstADict.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
