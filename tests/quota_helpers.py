"""Test doubles shared by the quota and scheduler tests: a real in-memory AdmissionStore."""

from __future__ import annotations

from medops.core.ledger.records import AdmissionStore


class MemoryAdmissionStore(AdmissionStore):
    """The AdmissionStore protocol kept in a list, as the DuckDB ledger keeps it in a table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int, int]] = []

    def record_admission(self, model: str, at_wall: float, requests: int, tokens: int) -> None:
        self.rows.append((model, at_wall, requests, tokens))

    def load_admissions(self, since_wall: float) -> list[tuple[str, float, int, int]]:
        return [row for row in self.rows if row[1] >= since_wall]


def max_in_any_span(times_and_amounts: list[tuple[float, int]], span: float) -> int:
    """The largest total admitted in any half-open span of `span` seconds (two pointers)."""
    events = sorted(times_and_amounts)
    best = total = start = 0
    for at, amount in events:
        total += amount
        while events[start][0] + span <= at:  # the quota's own comparison
            total -= events[start][1]
            start += 1
        best = max(best, total)
    return best
