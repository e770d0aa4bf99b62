"""Fault modes of the local endpoint, for tests and on-call drills.

Latency drawn from a distribution shaped like Groq's (a short queue, fast
prompt processing, a few hundred tokens a second of generation, a long thin
tail), a share of 5xx or 498 answers, slow answers, and refusing connections.
Draws come from a seeded generator, so a run with the same seed fails alike.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from medops.core.errors import ConfigError
from medops.core.groq.wire import Timing

# Shape of Groq's published speeds for small models: queue ~10-30 ms, prompt
# processing in the thousands of tokens a second, generation in the hundreds.
QUEUE_MEDIAN = 0.015
PROMPT_TOKENS_PER_SECOND = 20_000.0
COMPLETION_TOKENS_PER_SECOND = 750.0
TAIL_SIGMA = 0.5  # lognormal spread: p99 is about 3x the median

SERVER_ERRORS = (500, 502, 503)


@dataclass(frozen=True)
class FaultModes:
    """What the local endpoint does wrong, and how fast it answers.

    `latency_scale` multiplies the Groq-shaped latency (0: answer at once).
    `error_rate` and `capacity_rate` are the shares of admitted requests answered
    with a 5xx or a 498 (each still counts against rpm and rpd); `slow_rate` the
    share delayed `slow_seconds` more; with `refuse_connections` the endpoint
    stops listening and drops open connections.
    """

    latency_scale: float = 1.0
    error_rate: float = 0.0
    capacity_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    refuse_connections: bool = False

    def __post_init__(self) -> None:
        for name in ("error_rate", "capacity_rate", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"endpoint fault {name} = {value!r} must be a share from 0 to 1")
        for name in ("latency_scale", "slow_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"endpoint fault {name} = {value!r} must be a number of at least 0")


@dataclass(frozen=True)
class Fate:
    """What happens to one request: an injected status (or None), its delay and timing."""

    status: int | None
    delay: float
    timing: Timing


class FaultDice:
    """Draws each request's fate from the fault modes, reproducibly."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)

    def draw(self, faults: FaultModes, prompt_tokens: int, completion_tokens: int) -> Fate:
        """The fate of one request of this size under `faults`."""
        status: int | None = None
        roll = self._random.random()
        if roll < faults.error_rate:
            status = self._random.choice(SERVER_ERRORS)
        elif roll < faults.error_rate + faults.capacity_rate:
            status = 498
        jitter = self._random.lognormvariate(0.0, TAIL_SIGMA) if faults.latency_scale else 1.0
        scale = faults.latency_scale * jitter
        timing = Timing(
            queue_time=QUEUE_MEDIAN * scale,
            prompt_time=prompt_tokens / PROMPT_TOKENS_PER_SECOND * scale,
            completion_time=completion_tokens / COMPLETION_TOKENS_PER_SECOND * scale,
        )
        delay = timing.queue_time + timing.total_time
        if faults.slow_rate and self._random.random() < faults.slow_rate:
            delay += faults.slow_seconds
        return Fate(status, delay, timing)
