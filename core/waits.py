"""Recent waits: the ring every part keeps of its latest queue waits, and the one percentile they report."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(ordered: Sequence[float], pct: float) -> float:
    """The sample at rank round(pct/100 * (n-1)) of an already sorted sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]
