"""The local endpoint's own Groq limits: per model, requests and tokens a minute and a day.

Strict sliding windows: an admission at time `a` counts until `a + window`.
That is stricter than Groq's replenishing buckets (anything a sliding window
admits, a bucket of the same size admits too), so a client that never sees a
429 here never oversteps Groq either. Tokens are reserved at admission (prompt
plus the completion budget, as Groq charges) and settled to the real use: none
for a request that failed, which still counts as a request.

Admissions are stamped on arrival, as Groq stamps them, with no allowance for
network skew: a request held up on its way here (a burst of new connections)
and one that comes straight through later land here as close together as they
would at Groq. A client must keep counting a request until a window after its
answer came back, as medops' GroqQuota does, not a window after it was sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from medops.core.clock import Clock
from medops.core.groq.rate_headers import Dimension, format_go_duration
from medops.core.settings.config import ModelLimits

MINUTE = 60.0
DAY = 86_400.0


class _Entry:
    """One admission: when, and the tokens it currently holds."""

    __slots__ = ("at", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens


class _Window:
    """Admissions younger than `length` seconds, with running sums."""

    def __init__(self, length: float) -> None:
        self.length = length
        self.entries: deque[_Entry] = deque()
        self.tokens = 0

    def prune(self, now: float) -> None:
        while self.entries and now - self.entries[0].at >= self.length:
            self.tokens -= self.entries.popleft().tokens

    def holds(self, entry: _Entry, now: float) -> bool:
        return now - entry.at < self.length

    def add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        self.tokens += entry.tokens

    def wait_for_requests(self, limit: int, now: float) -> float:
        """Seconds until one more request fits under `limit`."""
        excess = len(self.entries) - limit  # entries that must leave, minus one
        if excess < 0:
            return 0.0
        return self.entries[excess].at + self.length - now

    def wait_for_tokens(self, limit: int, requested: int, now: float) -> float:
        """Seconds until `requested` more tokens fit under `limit`."""
        to_free = self.tokens + requested - limit
        if to_free <= 0:
            return 0.0
        for entry in self.entries:
            to_free -= entry.tokens
            if to_free <= 0:
                return entry.at + self.length - now
        return self.length  # more than the window holds: only an empty window fits it

    def reset_in(self, now: float) -> float:
        """Seconds until every admission has left (the window is whole again)."""
        return self.entries[-1].at + self.length - now if self.entries else 0.0


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the window, its figures and the wait."""

    dimension: Dimension
    limit: int
    used: int
    requested: int
    retry_in: float


@dataclass(frozen=True)
class Admission:
    """A request counted in its model's windows; settle it with the real tokens."""

    model: str
    entry: _Entry


class _ModelWindows:
    def __init__(self, limits: ModelLimits) -> None:
        self.limits = limits
        self.minute = _Window(MINUTE)
        self.day = _Window(DAY)

    def prune(self, now: float) -> None:
        self.minute.prune(now)
        self.day.prune(now)


class EndpointLimiter:
    """Per-model RPM, RPD, TPM and TPD windows, and the headers that report them."""

    def __init__(self, models: Mapping[str, ModelLimits], clock: Clock) -> None:
        self._clock = clock
        self._models = {name: _ModelWindows(limits) for name, limits in models.items()}

    def limits(self, model: str) -> ModelLimits | None:
        """A known model's limits, or None."""
        windows = self._models.get(model)
        return windows.limits if windows else None

    @property
    def models(self) -> Mapping[str, ModelLimits]:
        return {name: w.limits for name, w in self._models.items()}

    def set_limits(self, model: str, limits: ModelLimits) -> None:
        """Change (or add) a model's limits; what it already admitted still counts."""
        if model in self._models:
            self._models[model].limits = limits
        else:
            self._models[model] = _ModelWindows(limits)

    def admit(self, model: str, tokens: int) -> Admission | Refusal:
        """Count one request of `tokens` tokens, or say which window refuses it (the longest wait)."""
        windows = self._models[model]
        now = self._clock.monotonic()
        windows.prune(now)
        limits = windows.limits
        checks: list[tuple[Dimension, int, int, int, float]] = [
            ("rpm", limits.rpm, len(windows.minute.entries), 1, windows.minute.wait_for_requests(limits.rpm, now)),
            ("rpd", limits.rpd, len(windows.day.entries), 1, windows.day.wait_for_requests(limits.rpd, now)),
            ("tpm", limits.tpm, windows.minute.tokens, tokens,
             windows.minute.wait_for_tokens(limits.tpm, tokens, now)),
            ("tpd", limits.tpd, windows.day.tokens, tokens, windows.day.wait_for_tokens(limits.tpd, tokens, now)),
        ]
        refused = [c for c in checks if c[4] > 0]
        if refused:
            dimension, limit, used, requested, wait = max(refused, key=lambda c: c[4])
            return Refusal(dimension, limit, used, requested, wait)
        entry = _Entry(now, tokens)
        windows.minute.add(entry)
        windows.day.add(entry)
        return Admission(model, entry)

    def settle(self, admission: Admission, tokens: int) -> None:
        """Replace an admission's reserved tokens by the tokens it really used."""
        windows = self._models[admission.model]
        now = self._clock.monotonic()
        windows.prune(now)
        delta = tokens - admission.entry.tokens
        admission.entry.tokens = tokens
        for window in (windows.minute, windows.day):
            if window.holds(admission.entry, now):
                window.tokens += delta

    def headers(self, model: str) -> dict[str, str]:
        """Groq's `x-ratelimit-*` headers: the day's requests and the minute's tokens."""
        windows = self._models[model]
        now = self._clock.monotonic()
        windows.prune(now)
        limits = windows.limits
        return {
            "x-ratelimit-limit-requests": str(limits.rpd),
            "x-ratelimit-remaining-requests": str(max(0, limits.rpd - len(windows.day.entries))),
            "x-ratelimit-reset-requests": format_go_duration(round(windows.day.reset_in(now), 3)),
            "x-ratelimit-limit-tokens": str(limits.tpm),
            "x-ratelimit-remaining-tokens": str(max(0, limits.tpm - windows.minute.tokens)),
            "x-ratelimit-reset-tokens": format_go_duration(round(windows.minute.reset_in(now), 3)),
        }
