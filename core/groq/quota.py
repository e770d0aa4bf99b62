"""Groq quota per model: four rolling windows that admitted work never overruns.

Requests per minute/day and tokens per minute/day are counted over *any* 60 s
and 24 h span of the monotonic clock, not in calendar buckets. A request reserves
its prompt estimate plus its `max_completion_tokens` when admitted (Groq counts
the maximum at admission) and settles with the real usage afterwards. The
server's headers and 429 bodies can only tighten what we allow, never loosen it.
Admissions are written to an `AdmissionStore` so the day's windows survive a restart.
A model Groq says is over capacity (HTTP 498) can be held: no admissions until the hold ends.

Our windows must always contain the server's. Groq stamps a request when it
arrives, which is some time after we send it (a burst of new connections, a busy
loop) and before its answer returns; so a request counts as *in flight* (toward
every window, however long the flight) from admission until it settles, and then
enters the windows stamped at the settle time, counting until settle + span. That
is never earlier than arrival + span, so two requests the server sees less than a
window apart are always both counted here. The cost is the answer's latency: a
window's room returns that much later than if it were stamped at sending.

Each window keeps its settled admissions as plain numbers in parallel deques with
running sums, in time order (only ever appended at "now"), so a decision costs a
few comparisons plus the (amortised O(1)) expiry of admissions that left it,
whatever the window holds (14,400 a day or more).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from medops.core.burn_rate import HOUR
from medops.core.clock import Clock
from medops.core.errors import QuotaError
from medops.core.groq.rate_headers import DIMENSIONS, Dimension, LimitExceeded, RateLimitHeaders, format_go_duration
from medops.core.ledger.records import AdmissionStore
from medops.core.settings.config import ModelLimits, Settings
from medops.core.snapshot import ModelQuota, QuotaSnapshot, ServerReport, StoreSnapshot, WindowUsage

if TYPE_CHECKING:
    from collections.abc import Callable

MINUTE = 60.0
DAY = 86_400.0
# Index of each dimension in the per-quota lists below.
RPM, RPD, TPM, TPD = range(4)
_INDEX: dict[str, int] = {name: i for i, name in enumerate(DIMENSIONS)}
# When a 429 names no wait at all, hold its dimension this long before trying again.
DEFAULT_429_WAIT = 2.0


class RequestTooLarge(QuotaError):
    """A request can never pass: it needs more tokens than a window or the context holds."""


class QuotaExhausted(QuotaError):
    """No room now and the caller asked to fail fast (or stopped waiting)."""

    def __init__(self, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def too_large(model: str, tokens: int, limits: list[int], context_window: int) -> RequestTooLarge:
    """The refusal of a request bigger than the context window or a token window (rpm, rpd, tpm, tpd limits)."""
    if tokens > context_window:
        what = f"the model's context window of {context_window:,} tokens"
    elif tokens > limits[TPM]:
        what = f"its tokens-per-minute limit of {limits[TPM]:,}"
    else:
        what = f"its tokens-per-day limit of {limits[TPD]:,}"
    return RequestTooLarge(
        f"request needs about {tokens:,} tokens (prompt estimate + max_completion_tokens) on {model}, "
        f"more than {what}; shorten the prompt, lower max_completion_tokens or use another model")


class UnknownModel(QuotaError):
    """A request named a model with no configured limits."""


class Reservation(NamedTuple):
    """One admission, in flight until settled with the real usage or released unsent (a repeat is ignored)."""

    seq: int  # its key among the quota's requests in flight
    tokens: int  # reserved at admission
    wall: float  # admission wall time, for the store (0.0 when nothing is persisted)


class ModelQuotaLike(Protocol):
    """What the scheduler asks of one model's quota: `GroqQuota` here, `FleetQuota` over a store.

    One admission for every quota, `admit`: a `Reservation`, or the seconds to wait before asking again (a plain
    float, not a wrapper: the scheduler only ever compares and adds it). When there is no room the wait is
    positive, and finite for a request `check_size` lets through. A quota that decides in a round trip (the
    fleet's store) may also answer 0, "ask again now", a bounded number of times; the in-process one decides
    at once, without suspending. Every reservation ends once: `settle` with the tokens used, or `release`
    unsent; a repeat of either is ignored. `wait_time` and `blocking` are what the quota can tell without
    asking (the scheduler picks heads and refuses fail_fast requests with them)."""

    model: str

    @property
    def largest_request(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def capacity_hold(self) -> float: ...
    @property
    def rate_limited(self) -> int: ...
    def reconfigure(self, limits: ModelLimits) -> None: ...
    def check_size(self, tokens: int) -> None: ...
    def wait_time(self, tokens: int) -> float: ...
    async def admit(self, tokens: int, priority: int, waited: float) -> Reservation | float: ...
    def blocking(self, tokens: int) -> str: ...
    def settle(self, reservation: Reservation, tokens_used: int) -> None: ...
    def release(self, reservation: Reservation) -> None: ...
    def observe_headers(self, headers: RateLimitHeaders, default_reset: float | None = None) -> None: ...
    def observe_429(self, retry_after: float | None, limit: LimitExceeded | None = None,
                    headers: RateLimitHeaders | None = None) -> None: ...
    def hold_for_capacity(self, seconds: float) -> None: ...
    def restore(self, admissions: Iterable[tuple[float, int, int]]) -> None: ...
    def remaining(self) -> dict[str, int]: ...
    def snapshot(self) -> ModelQuota: ...


class QuotaFactory(Protocol):
    def __call__(self, model: str, limits: ModelLimits, clock: Clock,
                 store: AdmissionStore | None) -> ModelQuotaLike: ...


_new_reservation = tuple.__new__  # NamedTuple's own __new__ is a Python-level function: slower


class _Window:
    """Settled admissions younger than `span` seconds, with running sums of requests and tokens.

    Parallel deques of plain numbers (times, request counts, token counts), not an object
    per admission: a full day window holds 14,400 of them and the garbage collector would
    walk every one. Entries are only appended at "now", so they stay in time order."""

    __slots__ = ("request_counts", "requests", "span", "times", "token_counts", "tokens")

    def __init__(self, span: float) -> None:
        self.span = span
        self.times: deque[float] = deque()
        self.request_counts: deque[int] = deque()
        self.token_counts: deque[int] = deque()
        self.requests = 0
        self.tokens = 0

    def expire(self, now: float) -> None:
        """Drop admissions that have left the window (amortised O(1))."""
        times, span = self.times, self.span
        # Always `at + span <= now`, never `at <= now - span`: the two can round differently.
        # Waits are `at + span - now`, exact (Sterbenz), so `now + wait` lands on `at + span`.
        while times and times[0] + span <= now:
            times.popleft()
            self.requests -= self.request_counts.popleft()
            self.tokens -= self.token_counts.popleft()

    def add(self, at: float, requests: int, tokens: int) -> None:
        self.times.append(at)
        self.request_counts.append(requests)
        self.token_counts.append(tokens)
        self.requests += requests
        self.tokens += tokens

    def since(self, at: float, tokens: bool) -> int:
        """Requests (or tokens) of the admissions settled after `at`: newest first, so it reads only those."""
        amounts = reversed(self.token_counts if tokens else self.request_counts)
        total = 0
        for settled, amount in zip(reversed(self.times), amounts, strict=True):
            if settled <= at:
                break
            total += amount
        return total

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest admission leaves (0 when empty)."""
        return self.times[0] + self.span - now if self.times else 0.0

    def time_until_freed(self, need: int, tokens: bool, now: float, extra: int, extra_until: float,
                         flying: int) -> float:
        """Seconds until `need` units leave the window; `extra` (a server adjustment) leaves at `extra_until`.

        `flying` (in flight) leaves a whole span after it settles: at best `span` from now, if it
        settled now. So this is a lower bound when it counts what is in flight; settling looks again."""
        freed = 0
        extra_counted = extra <= 0 or extra_until <= now
        if extra_counted:
            extra = 0
        for at, amount in zip(self.times, self.token_counts if tokens else self.request_counts, strict=True):
            leaves = at + self.span
            if not extra_counted and extra_until <= leaves:
                extra_counted = True
                if freed + extra >= need:
                    return max(0.0, extra_until - now)
            freed += amount
            if freed + (extra if extra_counted else 0) >= need:
                return max(0.0, leaves - now)
        if not extra_counted:
            if freed + extra >= need:
                return max(0.0, extra_until - now)
            freed += extra
        if flying > 0 and freed + flying >= need:
            return self.span
        return math.inf


class GroqQuota:
    """One model's rpm, rpd, tpm and tpd windows, tightened by what the server reports."""

    def __init__(self, model: str, limits: ModelLimits, clock: Clock, store: AdmissionStore | None = None) -> None:
        self.model = model
        self.configured = limits
        self._clock = clock
        self._monotonic = clock.monotonic
        self._store = store
        self._minute = _Window(MINUTE)
        self._day = _Window(DAY)
        # Requests in flight count toward every window until they settle (see the module docstring).
        self._flying: dict[int, int] = {}  # reservation seq -> tokens it holds
        self._flying_requests = 0
        self._flying_tokens = 0
        self._next_seq = 0
        self._limits = [limits.rpm, limits.rpd, limits.tpm, limits.tpd]
        self._largest = min(limits.tpm, limits.tpd, limits.context_window)
        self._server_limits: list[int | None] = [None, None, None, None]
        # Server adjustments: usage the server counts that we did not admit (other clients).
        self._extra = [0, 0, 0, 0]
        self._extra_until = [0.0, 0.0, 0.0, 0.0]
        self._extra_any_until = 0.0
        self._blocked_until = [0.0, 0.0, 0.0, 0.0]
        self._held_until = 0.0  # no admissions before this: Groq was over capacity (498)
        self._blocked_any_until = 0.0  # the latest of the 429 blocks and the capacity hold
        self._server = ServerReport()
        self.rate_limited = 0
        self.refused_too_large = 0
        self.capacity_exceeded = 0

    # --- sizing ---------------------------------------------------------------

    @property
    def largest_request(self) -> int:
        """The most tokens (prompt + completion) one request may reserve."""
        return self._largest

    def reconfigure(self, limits: ModelLimits) -> None:
        """Take new configured limits (`set_limit` at run time); server-reported limits still cap them."""
        self.configured = limits
        for index in range(4):
            server = self._server_limits[index]
            configured = self._configured_limit(index)
            self._limits[index] = configured if server is None else min(configured, server)
        self._largest = min(self._limits[TPM], self._limits[TPD], limits.context_window)

    def _set_limit(self, index: int, server_limit: int) -> None:
        """Record a limit the server reported; the tighter of it and the configured one applies."""
        self._server_limits[index] = server_limit
        self._limits[index] = min(self._configured_limit(index), server_limit)
        self._largest = min(self._limits[TPM], self._limits[TPD], self.configured.context_window)

    def check_size(self, tokens: int) -> None:
        """Refuse at once a request that could never be admitted (Groq would answer 413)."""
        if tokens <= self._largest:
            return
        self.refused_too_large += 1
        raise too_large(self.model, tokens, self._limits, self.configured.context_window)

    # --- admission ------------------------------------------------------------

    def wait_time(self, tokens: int) -> float:
        """Seconds until `tokens` (and one request) fit every window; 0 means now."""
        now = self._clock.monotonic()
        minute, day = self._minute, self._day
        minute.expire(now)
        day.expire(now)
        limits = self._limits
        requests, tokens_held = self._flying_requests, self._flying_tokens + tokens
        if (now >= self._blocked_any_until and now >= self._extra_any_until
                and minute.requests + requests < limits[RPM] and day.requests + requests < limits[RPD]
                and minute.tokens + tokens_held <= limits[TPM] and day.tokens + tokens_held <= limits[TPD]):
            return 0.0
        return self._slow_wait(tokens, now)

    def _slow_wait(self, tokens: int, now: float) -> float:
        wait = max(0.0, self._held_until - now)
        for index in range(4):
            wait = max(wait, self._blocked_until[index] - now, self._room_wait(index, tokens, now))
        return wait

    def _room_wait(self, index: int, tokens: int, now: float) -> float:
        window = self._minute if index in (RPM, TPM) else self._day
        counts_tokens = index in (TPM, TPD)
        amount = tokens if counts_tokens else 1
        extra = self._extra[index] if self._extra_until[index] > now else 0
        flying = self._flying_tokens if counts_tokens else self._flying_requests
        used = (window.tokens if counts_tokens else window.requests) + flying + extra
        need = used + amount - self._limits[index]
        if need <= 0:
            return 0.0
        return window.time_until_freed(need, counts_tokens, now, extra, self._extra_until[index], flying)

    def try_admit(self, tokens: int) -> Reservation | None:
        """Admit one request of `tokens` if every window has room now; else None."""
        # The hot path, inlined: expiry as in _Window.expire, then nothing blocked and room everywhere.
        now = self._monotonic()
        minute, day = self._minute, self._day
        times = minute.times
        while times and times[0] + MINUTE <= now:
            times.popleft()
            minute.requests -= minute.request_counts.popleft()
            minute.tokens -= minute.token_counts.popleft()
        times = day.times
        while times and times[0] + DAY <= now:
            times.popleft()
            day.requests -= day.request_counts.popleft()
            day.tokens -= day.token_counts.popleft()
        limits = self._limits
        requests, tokens_held = self._flying_requests, self._flying_tokens + tokens
        if (now >= self._blocked_any_until and now >= self._extra_any_until
                and minute.requests + requests < limits[RPM] and day.requests + requests < limits[RPD]
                and minute.tokens + tokens_held <= limits[TPM] and day.tokens + tokens_held <= limits[TPD]):
            self._flying_requests = requests + 1
            self._flying_tokens = tokens_held
            seq = self._next_seq
            self._next_seq = seq + 1
            self._flying[seq] = tokens
            if self._store is None:
                return _new_reservation(Reservation, (seq, tokens, 0.0))
            wall = self._clock.wall()
            self._store.record_admission(self.model, wall, 1, tokens)
            return _new_reservation(Reservation, (seq, tokens, wall))
        if self._slow_wait(tokens, now) > 0:
            return None
        return self._admit(tokens, now)

    async def admit(self, tokens: int, priority: int = 0, waited: float = 0.0) -> Reservation | float:
        """The contract's admission, decided here and now (it never suspends): `try_admit`, else the wait (> 0).

        Priority and waiting time rank requests across a fleet; here the scheduler's own order does."""
        reservation = self.try_admit(tokens)
        return reservation if reservation is not None else self.wait_time(tokens)

    def count_admitted(self, tokens: int) -> Reservation:
        """Count an admission another authority made (the fleet's store said OK): in flight here, no check."""
        return self._admit(tokens, self._monotonic())

    def _admit(self, tokens: int, now: float) -> Reservation:
        self._flying_requests += 1
        self._flying_tokens += tokens
        seq = self._next_seq
        self._next_seq = seq + 1
        self._flying[seq] = tokens
        wall = self._clock.wall() if self._store is not None else 0.0
        if self._store is not None:
            self._store.record_admission(self.model, wall, 1, tokens)
        return Reservation(seq, tokens, wall)

    def blocking(self, tokens: int) -> str:
        """Which windows (or 429 blocks) keep `tokens` out right now, for messages and logs."""
        now = self._clock.monotonic()
        reasons = []
        if self._held_until > now:
            reasons.append(f"held for {format_go_duration(self._held_until - now)} after Groq was over capacity (498)")
        for index, name in enumerate(DIMENSIONS):
            if self._blocked_until[index] > now:
                reasons.append(f"{name} blocked by a 429 for {format_go_duration(self._blocked_until[index] - now)}")
            elif self._room_wait(index, tokens, now) > 0:
                reasons.append(f"{name} full")
        return ", ".join(reasons) or "room available"

    # --- settling -------------------------------------------------------------

    def settle(self, reservation: Reservation, tokens_used: int) -> None:
        """The request's answer (or error) is back: it leaves flight and counts `tokens_used` from now.

        Stamped now, not at sending: the server stamped it on arrival, which was no later than
        now, so it leaves our windows no earlier than the server's. For a request that may have
        reached Groq but whose usage is unknown (cancelled, timed out), settle the reserved tokens."""
        if not self._land(reservation):
            return
        now = self._monotonic()
        used = max(0, tokens_used)
        self._minute.add(now, 1, used)
        self._day.add(now, 1, used)
        if self._store is not None:
            # Move the stored admission to now: take back its row exactly, so a restore sees it settled here.
            self._store.record_admission(self.model, reservation.wall, -1, -reservation.tokens)
            self._store.record_admission(self.model, self._clock.wall(), 1, used)

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose request was never sent (cancelled before sending)."""
        if self._land(reservation) and self._store is not None:
            self._store.record_admission(self.model, reservation.wall, -1, -reservation.tokens)

    def _land(self, reservation: Reservation) -> bool:
        """Take a reservation out of flight; False if it already was (settled or released before)."""
        tokens = self._flying.pop(reservation.seq, None)
        if tokens is None:
            return False
        self._flying_requests -= 1
        self._flying_tokens -= tokens
        return True

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet settled or released."""
        return self._flying_requests

    # --- what the server says -------------------------------------------------

    def observe_headers(self, headers: RateLimitHeaders, default_reset: float | None = None) -> None:
        """Tighten local state when Groq reports less room (day's requests, minute's tokens).

        A report without a reset time holds for `default_reset` (a 429's wait), else a whole window."""
        if headers.empty:
            return
        now = self._clock.monotonic()
        self._server = ServerReport(headers.limit_requests, headers.remaining_requests, headers.reset_requests,
                                    headers.limit_tokens, headers.remaining_tokens, headers.reset_tokens,
                                    self._clock.wall())
        reset_requests = headers.reset_requests if headers.reset_requests is not None else default_reset
        reset_tokens = headers.reset_tokens if headers.reset_tokens is not None else default_reset
        self._tighten(RPD, headers.limit_requests, headers.remaining_requests, reset_requests, now)
        self._tighten(TPM, headers.limit_tokens, headers.remaining_tokens, reset_tokens, now)

    def _tighten(self, index: int, limit: int | None, remaining: int | None, reset: float | None,
                 now: float) -> None:
        if limit is not None and limit > 0:
            self._set_limit(index, limit)
        if remaining is None:
            return
        window = self._minute if index in (RPM, TPM) else self._day
        window.expire(now)
        local_used = (window.tokens + self._flying_tokens if index in (TPM, TPD)
                      else window.requests + self._flying_requests)
        server_used = self._limits[index] - remaining
        # The server's count has fully replenished after `reset`; until then hold the difference.
        hold = reset if reset is not None else window.span
        self._set_extra(index, server_used - local_used, now + min(hold, window.span))

    def _configured_limit(self, index: int) -> int:
        c = self.configured
        return (c.rpm, c.rpd, c.tpm, c.tpd)[index]

    def count_others(self, others: list[int], for_seconds: tuple[float, float, float, float]) -> None:
        """Count use this quota did not admit (rpm, rpd, tpm, tpd), each for its given seconds from now.

        The fleet's local share: what the other members may hold when the store went away stays counted
        until it must have left the windows."""
        now = self._clock.monotonic()
        for index, amount in enumerate(others):
            self._set_extra(index, amount, now + for_seconds[index])

    def _set_extra(self, index: int, amount: int, until: float) -> None:
        now = self._clock.monotonic()
        current = self._extra[index] if self._extra_until[index] > now else 0
        if amount <= 0 and current <= 0:
            return
        # The newest report replaces the previous one: it already counts what the old one did.
        self._extra[index] = max(0, amount)
        self._extra_until[index] = until if amount > 0 else now
        self._extra_any_until = max(self._extra_until)

    def observe_429(self, retry_after: float | None, limit: LimitExceeded | None = None,
                    headers: RateLimitHeaders | None = None) -> None:
        """Block the dimension a 429 names until its retry time has passed, however long."""
        self.rate_limited += 1
        now = self._clock.monotonic()
        waits = [w for w in (retry_after, limit.retry_in if limit else None) if w is not None and w >= 0]
        wait = max(waits) if waits else DEFAULT_429_WAIT
        if headers is not None:
            self.observe_headers(headers, default_reset=wait)
        dimensions = self._named_dimensions(limit, headers)
        for name in dimensions:
            index = _INDEX[name]
            self._blocked_until[index] = max(self._blocked_until[index], now + wait)
        if limit is not None and limit.limit > 0:
            self._set_limit(_INDEX[limit.dimension], limit.limit)
        self._blocked_any_until = max(*self._blocked_until, self._held_until)

    def hold_for_capacity(self, seconds: float) -> None:
        """Groq answered 498 for this model: admit nothing more for `seconds` (a longer hold in force stays)."""
        self.capacity_exceeded += 1
        self._held_until = max(self._held_until, self._clock.monotonic() + max(0.0, seconds))
        self._blocked_any_until = max(*self._blocked_until, self._held_until)

    @property
    def capacity_hold(self) -> float:
        """Seconds the capacity hold still keeps this model's admissions shut (0: none)."""
        return max(0.0, self._held_until - self._clock.monotonic())

    @staticmethod
    def _named_dimensions(limit: LimitExceeded | None, headers: RateLimitHeaders | None) -> tuple[Dimension, ...]:
        if limit is not None:
            return (limit.dimension,)
        named: list[Dimension] = []
        if headers is not None and headers.remaining_requests == 0:
            named.append("rpd")
        if headers is not None and headers.remaining_tokens == 0:
            named.append("tpm")
        # A bare 429 says nothing about which limit: hold them all.
        return tuple(named) or DIMENSIONS

    # --- restart --------------------------------------------------------------

    def restore(self, admissions: Iterable[tuple[float, int, int]]) -> None:
        """Put back (wall time, requests, tokens) admissions from the store; only before any new one."""
        now, wall_now = self._clock.monotonic(), self._clock.wall()
        by_wall: dict[float, list[int]] = {}
        for at_wall, requests, tokens in admissions:
            totals = by_wall.setdefault(at_wall, [0, 0])
            totals[0] += requests
            totals[1] += tokens
        restored = sorted((now - (wall_now - at_wall), max(0, r), max(0, t))
                          for at_wall, (r, t) in by_wall.items() if (r or t) and wall_now - at_wall < DAY)
        if not restored:
            return
        if self._day.times or self._flying:
            raise QuotaError(f"{self.model}: admissions can only be restored before the first new one; "
                             "restore at start")
        # A settled admission was stored at its settle time, so it comes back where it was counted. One the
        # last process never settled comes back at its sending time: it reached Groq no later than that
        # process's end, so a flight cut short by the restart may leave our windows a little early.
        self._day = _Window(DAY)
        self._minute = _Window(MINUTE)
        for at, requests, tokens in restored:
            self._day.add(at, requests, tokens)
            if at + MINUTE > now:
                self._minute.add(at, requests, tokens)
        self._minute.expire(now)
        self._day.expire(now)

    # --- reporting ------------------------------------------------------------

    def remaining(self) -> dict[str, int]:
        """Room left now in each window (after server adjustments and 429 blocks)."""
        return {w.name: (0 if w.blocked_for > 0 else w.remaining) for w in self._windows()}

    def _windows(self) -> tuple[WindowUsage, ...]:
        now = self._clock.monotonic()
        self._minute.expire(now)
        self._day.expire(now)
        usages = []
        for index, name in enumerate(DIMENSIONS):
            window = self._minute if index in (RPM, TPM) else self._day
            extra = self._extra[index] if self._extra_until[index] > now else 0
            flying = self._flying_tokens if index in (TPM, TPD) else self._flying_requests
            used = (window.tokens if index in (TPM, TPD) else window.requests) + flying + extra
            # In flight, a request leaves a whole window after it settles: at least `span` from now.
            reset_in = window.reset_in(now) if window.times or not flying else window.span
            if extra:
                reset_in = min(reset_in, self._extra_until[index] - now) if window.times or flying else \
                    self._extra_until[index] - now
            last_hour = None if window is self._minute else window.since(now - HOUR, index == TPD) + flying
            usages.append(WindowUsage(name, used, self._limits[index], max(0.0, reset_in),
                                      max(0.0, self._blocked_until[index] - now), last_hour=last_hour))
        return tuple(usages)

    def own_use(self) -> tuple[int, int, int, int]:
        """What this quota itself admitted in each window (rpm, rpd, tpm, tpd), in flight included.

        Unlike a window's `used`, never the use counted for others (server reports, a fleet's local share)."""
        now = self._clock.monotonic()
        self._minute.expire(now)
        self._day.expire(now)
        return (self._minute.requests + self._flying_requests, self._day.requests + self._flying_requests,
                self._minute.tokens + self._flying_tokens, self._day.tokens + self._flying_tokens)

    def snapshot(self) -> ModelQuota:
        """This model's four windows, the server's last report, its 429 and 498 counts and any capacity hold."""
        return ModelQuota(self.model, self._windows(), self._server, self.rate_limited, self.refused_too_large,
                          self.capacity_exceeded, self.capacity_hold)


class QuotaBook:
    """Every configured model's quota, with restore-at-start and one snapshot.

    Each model's quota is an in-process `GroqQuota`, or, when `build` says so (a fleet
    store is set), one shared through the store: the scheduler cannot tell them apart."""

    def __init__(self, settings: Settings, clock: Clock, store: AdmissionStore | None = None,
                 build: QuotaFactory | None = None, describe_store: Callable[[], StoreSnapshot] | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self._store = store
        self._build: QuotaFactory = build or GroqQuota
        self._describe_store = describe_store
        self._quotas: dict[str, ModelQuotaLike] = {
            name: self._build(name, limits, clock, store) for name, limits in settings.models.items()}

    def __getitem__(self, model: str) -> ModelQuotaLike:
        try:
            return self._quotas[model]
        except KeyError:
            known = ", ".join(sorted(self._quotas))
            raise UnknownModel(f"unknown model {model!r}; configured models: {known}") from None

    @property
    def models(self) -> Mapping[str, ModelQuotaLike]:
        return self._quotas

    def apply(self, settings: Settings) -> None:
        """Take changed per-model limits while running; a new model gets fresh windows."""
        self.settings = settings
        for name, limits in settings.models.items():
            if name in self._quotas:
                self._quotas[name].reconfigure(limits)
            else:
                self._quotas[name] = self._build(name, limits, self._clock, self._store)

    def restore(self) -> int:
        """Reload the last 24 h of admissions from the store (blocking: run it off the loop)."""
        if self._store is None:
            return 0
        since = self._clock.wall() - DAY
        grouped: dict[str, list[tuple[float, int, int]]] = {}
        for model, at_wall, requests, tokens in self._store.load_admissions(since):
            grouped.setdefault(model, []).append((at_wall, requests, tokens))
        for model, rows in grouped.items():
            if model in self._quotas:
                self._quotas[model].restore(rows)
        return sum(len(rows) for rows in grouped.values())

    async def restore_async(self) -> int:
        """`restore` on a worker thread, so the event loop never waits on the ledger."""
        return await asyncio.to_thread(self.restore)

    def store_snapshot(self) -> StoreSnapshot | None:
        """The fleet's store as this instance sees it (seeding, down...); None without a store."""
        return self._describe_store() if self._describe_store is not None else None

    def snapshot(self) -> QuotaSnapshot:
        """All models' windows at one instant."""
        return QuotaSnapshot(tuple(quota.snapshot() for quota in self._quotas.values()), store=self.store_snapshot())
