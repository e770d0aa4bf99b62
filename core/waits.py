"""Recent waits: the ring every part keeps of its latest queue waits, and the one percentile they report."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence


def percentile(ordered: Sequence[float], pct: float) -> float:
    """The sample at rank round(pct/100 * (n-1)) of an already sorted sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


class RecentWaits:
    """The latest `keep` waits (seconds) of one queue, and their p50 and p95.

    Not locked: a part whose waits are added from several threads holds its own lock around both calls.
    """

    def __init__(self, keep: int) -> None:
        self._ring: deque[float] = deque(maxlen=keep)

    def add(self, seconds: float) -> None:
        """Remember one wait (a negative one, from clocks that disagree, counts as none)."""
        self._ring.append(max(0.0, seconds))

    def percentiles(self, waiting: Iterable[float] = ()) -> tuple[float, float]:
        """p50 and p95 of the recent waits, with the ages of those `waiting` still (0.0 when there are none)."""
        ordered = sorted([*self._ring, *waiting])
        return percentile(ordered, 50), percentile(ordered, 95)
