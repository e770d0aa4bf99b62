"""What the shared case store refuses, and why (ids and sizes only, never case contents)."""

from __future__ import annotations

from medops.core.errors import CaseMemoryError


class CaseTooLarge(CaseMemoryError):
    """An encoded case does not fit in one slot."""

    def __init__(self, case_id: str, size: int, limit: int) -> None:
        super().__init__(f"case {case_id!r} encodes to {size:,} bytes; a slot holds at most {limit:,}: "
                         "store less in the case or raise case_memory_mb")
        self.case_id, self.size, self.limit = case_id, size, limit


class NoFreeSlot(CaseMemoryError):
    """Every slot holds a case."""

    def __init__(self, case_id: str, used: int, total: int) -> None:
        super().__init__(f"no free slot for case {case_id!r}: {used:,} of {total:,} slots in use; "
                         "release finished cases or raise max_cases_in_memory")
        self.case_id, self.used, self.total = case_id, used, total


class UnknownCase(CaseMemoryError):
    """No case with this id is in memory (never stored, or released)."""

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id!r} is not in case memory: store it first (it may have been released)")
        self.case_id = case_id


class InvalidCaseId(CaseMemoryError):
    """A case id that cannot be a key: empty, too long or not a string."""

    def __init__(self, case_id: object, limit: int) -> None:
        shown = repr(case_id)[:40] if isinstance(case_id, str) else type(case_id).__name__
        super().__init__(f"case id {shown} is not usable: give a non-empty string of at most {limit} UTF-8 bytes")
        self.limit = limit


class CaseNotEncodable(CaseMemoryError):
    """A case holds something JSON cannot carry (the value itself is not shown: it is patient data)."""

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id!r} cannot be encoded: use a dict of str keys with str, int, float, "
                         "bool, None, list or dict values")
        self.case_id = case_id


class CaseMemoryBusy(CaseMemoryError):
    """The writer lock stayed taken (another process holds it and is stuck)."""

    def __init__(self, segment: str) -> None:
        super().__init__(f"case memory {segment} stayed locked by another process; "
                         "check for a stopped worker (e.g. `ps -o pid,stat,cmd`) and retry")


class SegmentUnavailable(CaseMemoryError):
    """The shared-memory segment cannot be created or opened."""
