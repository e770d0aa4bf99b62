"""Capped exponential backoff with equal jitter, for retries and capacity holds.

Half of each wait is fixed and half random: callers that failed together spread
out instead of coming back in step, yet none comes back sooner than half the step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Waits that double from `base` per step up to `cap`, each jittered within its upper half."""

    base: float
    cap: float
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.cap):
            raise ValueError(f"backoff needs 0 < base <= cap, not base={self.base!r}, cap={self.cap!r}")

    def delay(self, step: int) -> float:
        """Seconds to wait before try `step + 1` (step 0: the first wait)."""
        ceiling = min(self.cap, self.base * 2 ** min(step, 64))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
