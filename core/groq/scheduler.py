"""Priority scheduler for Groq requests: intake, batching, aging, concurrency, quota.

Critical requests are ready at once; high and normal ones are gathered per agent
type for `batch_interval` and released together. Ready requests wait in per-model
queues so a model whose quota is spent never holds up another. The next request
sent is the best-ranked head among models with room: by effective priority
(critical > high > normal), then first come first served. A waiting request is
promoted one class for each `starvation_bound` it has waited (normal -> high ->
critical), so a critical request is never passed by a lower one that has waited
less, and under any sustained load a request is sent at most two bounds (one from
high) plus the time to serve those queued before it in its class after it arrives.

Every HTTP attempt is its own quota admission, because Groq may count every one
it receives. So the scheduler, not the sender, retries: an attempt that failed
with a 5xx, a timeout or a connection error is counted as reserved (one that never
reached Groq, `NeverSent`, gives its reservation back) and the request waits a
capped, jittered backoff, then queues for quota again (at most
`max_retries` times, within its deadline). A 498 (Groq over capacity) holds every
send to that model for a short, growing, jittered interval (other models go on)
and queues the request again. A 429 waits as the quota says.

Every caller hears how its request ended: a result, or an error that says why
(queue full, too large, quota spent with fail_fast, deadline, cancelled, stopped,
retries spent with the last reason and the attempt count, or the sender's own
error). Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Coroutine
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from medops.core.clock import Clock, wall_text
from medops.core.errors import GroqError, MedopsError, SchedulerError
from medops.core.groq.backoff import Backoff
from medops.core.groq.errors import (
    CapacityExceeded,
    NeverSent,
    RateLimited,
    RequestRejected,
    UpstreamUnavailable,
)
from medops.core.groq.quota import ModelQuotaLike, QuotaBook, QuotaExhausted, RequestTooLarge, Reservation
from medops.core.groq.rate_headers import format_go_duration
from medops.core.groq.requests import (
    Attempt,
    Completion,
    InvalidRequest,
    Priority,
    PromptRequest,
    PromptResult,
    Sender,
)
from medops.core.groq.wait_reason import Wait, behind, quota_wait, seconds, store_never_reached
from medops.core.ledger.records import RequestRecord, RequestRecorder
from medops.core.settings.config import Settings
from medops.core.snapshot import ModelQuota, PriorityQueue, RequestRow, SchedulerSnapshot
from medops.core.waits import RecentWaits

# A request answered with 429 this many times is failed with the last 429 rather than requeued.
MAX_RATE_LIMITED_ATTEMPTS = 8
# A request answered with 498 this many times is failed with the last one (a request with no deadline
# must end some time): with the holds below that is about half a minute of Groq over capacity.
MAX_CAPACITY_ATTEMPTS = 8
# Waits before another attempt after a 5xx, timeout or connection error (per request).
RETRY_BACKOFF = (0.25, 4.0)  # base, cap (seconds)
# How long a 498 holds every send to its model: doubling per 498 in a row, from base to cap.
CAPACITY_HOLD = (0.5, 8.0)  # base, cap (seconds)
WAITS_KEPT = 512  # recent queue waits per priority, for the snapshot's p50/p95
PRIORITIES_HIGH_FIRST = (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL)
REQUEST_ROWS = 500  # requests a snapshot lists, most urgent first: a deep queue must not bloat every snapshot


class QueueFull(SchedulerError):
    """The queue holds `queue_limit` requests already; the submit was refused."""


class DeadlineExceeded(SchedulerError):
    """A request's deadline passed before it was answered."""


class RequestCancelled(SchedulerError):
    """A request was cancelled (by `cancel` or by its caller) before it was answered."""


class UnknownRequest(SchedulerError):
    """An operator named a request this scheduler does not hold (never queued here, or already answered)."""


class PriorityNotAllowed(SchedulerError):
    """An operator asked for a priority above what the request's key or agent allows."""


class SchedulerStopped(SchedulerError):
    """The scheduler is not running (not started yet, or stopped with the request unanswered)."""


class TicketState(enum.Enum):
    """Where one request is in the scheduler.

    new -> batching -> waiting -> admitting -> sending -> done; after a failed attempt: sending -> waiting (429,
    498) or sending -> backoff -> waiting (5xx, timeout, connection error). Every attempt is `admitting` while its
    quota is asked (at once in process, a round trip to the fleet's store), then sending or waiting again. Every
    change goes through `Scheduler._move`, which keeps the depth per priority and the in-flight count."""

    NEW = "new"
    BATCHING = "batching"
    WAITING = "waiting"
    ADMITTING = "admitting"
    SENDING = "sending"
    BACKOFF = "backoff"
    DONE = "done"

    @property
    def queued(self) -> bool:
        """Waiting its turn (in a batch, a queue, a backoff, or asking its quota): counted in the depth."""
        return self in _QUEUED

    @property
    def holds_slot(self) -> bool:
        """Holding one of the `groq_concurrent` slots (asking its quota, or sending)."""
        return self in _HOLDS_SLOT

    @property
    def ready(self) -> bool:
        """Queued for its model: past the batch window, not yet sent."""
        return self in _READY


_QUEUED = frozenset({TicketState.BATCHING, TicketState.WAITING, TicketState.BACKOFF, TicketState.ADMITTING})
_HOLDS_SLOT = frozenset({TicketState.ADMITTING, TicketState.SENDING})
_READY = frozenset({TicketState.WAITING, TicketState.BACKOFF, TicketState.ADMITTING})


class _Spent(enum.Enum):
    """What an attempt's reservation becomes, by how the attempt ended."""

    NOTHING = "released"  # never reached Groq: given back whole
    NO_TOKENS = "refused"  # Groq refused it (429, 4xx): one request, no tokens
    RESERVED = "reserved"  # Groq may have counted it (5xx, timeout, 498, cancelled, deadline): all of it
    USED = "used"  # answered: what Groq says it counted


def _spent(ending: Completion | BaseException) -> _Spent:
    if isinstance(ending, Completion):
        return _Spent.USED
    if isinstance(ending, NeverSent):
        return _Spent.NOTHING
    if isinstance(ending, RateLimited | RequestRejected):
        return _Spent.NO_TOKENS
    return _Spent.RESERVED


class _Ticket:
    """One request's life in the scheduler."""

    __slots__ = ("attempts", "backoff_until", "capacity_refusals", "deadline_at", "failures", "future",
                 "last_failure", "priority", "quota", "rate_limits", "request", "reservation", "runner", "sent_at",
                 "seq", "state", "stop_reason", "submitted_at", "tokens")

    def __init__(self, request: PromptRequest, quota: ModelQuotaLike, tokens: int, submitted_at: float, seq: int,
                 future: asyncio.Future[PromptResult]) -> None:
        self.request = request
        self.quota = quota
        self.tokens = tokens
        self.priority = request.priority
        self.submitted_at = submitted_at
        self.deadline_at = submitted_at + request.deadline if request.deadline is not None else None
        self.seq = seq
        self.future = future
        self.state = TicketState.NEW  # changed only by Scheduler._move
        self.attempts = 0  # HTTP attempts, each its own quota admission
        self.failures = 0  # of which ended in a 5xx, timeout or connection error
        self.rate_limits = 0  # of which ended in a 429
        self.capacity_refusals = 0  # of which ended in a 498
        self.last_failure: UpstreamUnavailable | CapacityExceeded | None = None
        self.sent_at: float | None = None
        self.backoff_until = 0.0  # monotonic time a backing-off request queues again
        self.runner: asyncio.Task[None] | None = None
        self.reservation: Reservation | None = None  # the current attempt's, while it is in flight
        self.stop_reason: MedopsError | None = None


class _ModelQueue:
    """Ready requests for one model: a FIFO per submitted priority (dead tickets are skipped lazily)."""

    __slots__ = ("asking", "by_priority", "next_room_at")

    def __init__(self) -> None:
        self.by_priority: dict[Priority, deque[_Ticket]] = {p: deque() for p in PRIORITIES_HIGH_FIRST}
        self.next_room_at = 0.0  # when the head's quota wait ends (0: unknown / now)
        self.asking = False  # a head is asking the quota: one at a time keeps the order within the model

    def head(self, now: float, starvation_bound: float) -> tuple[_Ticket | None, int]:
        """The ticket to send next (the best `_rank` among the lanes' fronts) and how many dead tickets
        were dropped from the fronts on the way."""
        fronts = []
        dropped = 0
        for queue in self.by_priority.values():
            while queue and queue[0].state is not TicketState.WAITING:
                queue.popleft()
                dropped += 1
            if queue:
                fronts.append(queue[0])
        if not fronts:
            return None, dropped
        # A lane is in arrival order (but for batches closing per agent and retries going back to the front),
        # so its front has waited longest and is its most promoted, within a batch window.
        return min(fronts, key=lambda t: _rank(t, now, starvation_bound)), dropped

    def remove_head(self, ticket: _Ticket) -> None:
        self.by_priority[ticket.priority].popleft()

    def __len__(self) -> int:
        return sum(len(q) for q in self.by_priority.values())


def effective_priority(priority: Priority, waited: float, starvation_bound: float) -> Priority:
    """The class a request competes in after waiting `waited` seconds: one up per `starvation_bound`."""
    return Priority(min(Priority.CRITICAL, priority + int(waited // starvation_bound)))


def _rank(ticket: _Ticket, now: float, starvation_bound: float) -> tuple[int, int]:
    """Smaller is sent first: effective priority, then arrival (promoted and native alike)."""
    return -effective_priority(ticket.priority, now - ticket.submitted_at, starvation_bound), ticket.seq


class Scheduler:
    """Queues, batches, ranks and sends prompt requests within quota and concurrency."""

    def __init__(self, settings: Settings, quotas: QuotaBook, sender: Sender, clock: Clock,
                 recorder: RequestRecorder | None = None, retry_backoff: Backoff | None = None,
                 capacity_hold: Backoff | None = None) -> None:
        self._settings = settings
        self._quotas = quotas
        self._sender = sender
        self._clock = clock
        self._recorder = recorder
        self.concurrency = settings.groq_concurrent
        self.batch_interval = settings.batch_interval
        self.queue_limit = settings.queue_limit
        self.starvation_bound = settings.starvation_bound
        self._seq = itertools.count()
        self._tickets: dict[str, _Ticket] = {}  # every unfinished request, by request_id
        self._batches: dict[str, tuple[float, list[_Ticket]]] = {}  # agent -> (closes at, tickets)
        self._ready: dict[str, _ModelQueue] = {}
        self._deadlines: list[tuple[float, int, _Ticket]] = []
        self._backoffs: list[tuple[float, int, _Ticket]] = []  # (queue again at, tiebreak, ticket)
        self._retry_backoff = retry_backoff or Backoff(*RETRY_BACKOFF, rng=random.Random())
        self._capacity_hold = capacity_hold or Backoff(*CAPACITY_HOLD, rng=random.Random())
        # (model, tier) -> (498s in a row, when the hold began). A 498 to the flex tier holds flex requests to
        # that model only, here; one to the model's other tiers holds the model, in its quota (the fleet's too).
        self._capacity_streaks: dict[tuple[str, str], tuple[int, float]] = {}
        self._flex_held_until: dict[str, float] = {}  # model -> monotonic time its flex requests may go again
        self.retried = 0  # attempts after a 5xx, timeout, connection error or 498
        self._depth = dict.fromkeys(PRIORITIES_HIGH_FIRST, 0)
        self._dead_in_queues = 0
        self._in_flight = 0
        self._waits = {p: RecentWaits(WAITS_KEPT) for p in PRIORITIES_HIGH_FIRST}
        self.completed = self.failed = self.rejected = 0
        self.paused = False
        self._running = False
        self._wake = asyncio.Event()
        self._sleeping_until: float | None = None  # when the timer loop wakes by itself (None: only when told)
        self._timer: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start the timer loop (batch windows, quota waits, deadlines); idempotent."""
        if self._running:
            return
        self._running = True
        self._wake = asyncio.Event()
        self._timer = asyncio.create_task(self._timer_loop(), name="medops-scheduler")

    async def stop(self) -> None:
        """Fail every unanswered request with `SchedulerStopped`, cancel sends, stop the loop."""
        if not self._running:
            return
        self._running = False
        stopped = SchedulerStopped("medops is stopping; the request was not answered, submit it again after restart")
        runners = []
        for ticket in list(self._tickets.values()):
            runner = ticket.runner if ticket.state.holds_slot else None
            if ticket.state is TicketState.SENDING:
                ticket.stop_reason = stopped
            else:  # asking its quota too: the caller hears now, the ask is cancelled below
                self._finish_waiting(ticket, stopped, "cancelled")
            if runner is not None:
                runner.cancel()
                runners.append(runner)
        if self._timer is not None:
            self._timer.cancel()
            runners.append(self._timer)
        await asyncio.gather(*runners, return_exceptions=True)
        for queue in self._ready.values():  # an ask cancelled before it began never said it was done
            queue.asking = False
        self._timer = None

    def pause(self) -> None:
        """Hold new work in the queues; requests in flight finish."""
        self.paused = True

    def resume(self) -> None:
        """Send queued work again."""
        self.paused = False
        self._kick()

    def apply(self, settings: Settings) -> None:
        """Take new values of the scheduler's knobs (concurrency, batching, bounds) and model limits."""
        self._settings = settings
        self._quotas.apply(settings)
        for queue in self._ready.values():
            queue.next_room_at = 0.0  # limits may have grown: look again
        self.concurrency = settings.groq_concurrent
        self.batch_interval = settings.batch_interval
        self.queue_limit = settings.queue_limit
        self.starvation_bound = settings.starvation_bound
        self._kick()

    # --- intake ---------------------------------------------------------------

    async def submit(self, request: PromptRequest) -> PromptResult:
        """Queue `request` and wait for its answer (or an error saying why there is none)."""
        ticket = self._admit_to_queue(request)
        try:
            return await ticket.future
        except asyncio.CancelledError:
            # The caller gave up: take the request out and stop its send.
            self._cancel_ticket(ticket, RequestCancelled(f"request {ticket.request.request_id} was cancelled "
                                                         "by its caller"))
            raise

    def _admit_to_queue(self, request: PromptRequest) -> _Ticket:
        if not self._running:
            raise SchedulerStopped("the Groq scheduler is not running; start medops first")
        if request.request_id in self._tickets:
            raise InvalidRequest(f"request id {request.request_id} is already queued; give each request its own id")
        model = request.model or self._settings.default_model
        quota = self._quotas[model]
        tokens = request.prompt_estimate + request.max_completion_tokens
        try:
            quota.check_size(tokens)
            waiting = sum(self._depth.values())
            if waiting >= self.queue_limit:
                raise QueueFull(f"{waiting} requests are already waiting (queue_limit {self.queue_limit}); "
                                "retry later, or raise queue_limit")
            if request.fail_fast:
                self._refuse_if_no_room(quota, tokens)
        except (RequestTooLarge, QueueFull, QuotaExhausted) as refusal:
            self.rejected += 1
            self._record(request, model, 0, 0, 0.0, 0.0, "refused")
            raise refusal from None
        if request.model is None:
            request = replace(request, model=model)
        now = self._clock.monotonic()
        future: asyncio.Future[PromptResult] = asyncio.get_running_loop().create_future()
        ticket = _Ticket(request, quota, tokens, now, next(self._seq), future)
        self._tickets[request.request_id] = ticket
        self._push_deadline(ticket)
        if ticket.priority is Priority.CRITICAL or self.batch_interval <= 0:
            self._make_ready(ticket)
        else:
            self._join_batch(ticket, now)
        self._kick()
        return ticket

    @staticmethod
    def _refuse_if_no_room(quota: ModelQuotaLike, tokens: int) -> None:
        wait = quota.wait_time(tokens)
        if wait > 0:
            raise QuotaExhausted(f"{quota.model} has no room for {tokens:,} tokens now ({quota.blocking(tokens)}); "
                                 f"room returns in {format_go_duration(min(wait, 10 * 86_400.0))}; "
                                 "submit without fail_fast to wait in the queue", wait)

    def _join_batch(self, ticket: _Ticket, now: float) -> None:
        self._move(ticket, TicketState.BATCHING)
        agent = ticket.request.agent
        batch = self._batches.get(agent)
        if batch is None:
            self._batches[agent] = (now + self.batch_interval, [ticket])
        else:
            batch[1].append(ticket)

    def _make_ready(self, ticket: _Ticket, front: bool = False) -> None:
        self._move(ticket, TicketState.WAITING)
        queue = self._ready.get(ticket.quota.model)
        if queue is None:
            queue = self._ready[ticket.quota.model] = _ModelQueue()
        lane = queue.by_priority[ticket.priority]
        if front:
            lane.appendleft(ticket)
        else:
            lane.append(ticket)
        queue.next_room_at = 0.0

    def _push_deadline(self, ticket: _Ticket) -> None:
        # A fresh tiebreak: a ticket may be pushed again, and two equal keys must never compare tickets.
        if ticket.deadline_at is not None:
            heapq.heappush(self._deadlines, (ticket.deadline_at, next(self._seq), ticket))

    def cancel(self, request_id: str, by: str = "") -> bool:
        """Cancel a queued or in-flight request; its caller gets `RequestCancelled` naming `by` (who cancelled).
        A queued request's place is freed; one in flight is stopped, its attempt counted as Groq may have.
        False if unknown."""
        ticket = self._tickets.get(request_id)
        if ticket is None:
            return False
        who = f" by {by}" if by else ""
        self._cancel_ticket(ticket, RequestCancelled(f"request {request_id} was cancelled{who} while "
                                                     f"{ticket.state.value}; submit it again if it is still needed"))
        return True

    def give_up(self, request_id: str, error: MedopsError) -> bool:
        """End a request still queued with `error`, a bound its caller set (the store_wait of a member whose store
        never answered), recorded as a timeout. False if it is unknown or already at Groq (that attempt ends)."""
        ticket = self._tickets.get(request_id)
        if ticket is None or not ticket.state.queued:
            return False
        self._finish_waiting(ticket, error, "timeout")
        self._kick()
        return True

    def state_of(self, request_id: str) -> TicketState | None:
        """Where a held request is; None if this scheduler does not hold it."""
        ticket = self._tickets.get(request_id)
        return ticket.state if ticket is not None else None

    def set_priority(self, request_id: str, priority: Priority) -> Priority:
        """Move a held request to `priority` (within its `max_priority`); it competes there from now, aging
        included, in its arrival order. The priority it had. `UnknownRequest`, `PriorityNotAllowed` say why not."""
        ticket = self._tickets.get(request_id)
        if ticket is None:
            raise UnknownRequest(f"no request {request_id} is queued or in flight here (it may have been answered "
                                 "already); list them with `medops requests`")
        bound = ticket.request.max_priority
        if priority > bound:
            who = f"key {ticket.request.client}" if ticket.request.client else f"agent {ticket.request.agent}"
            raise PriorityNotAllowed(f"request {request_id} may go up to {bound.label} at most (its {who}'s "
                                     f"max priority), not {priority.label}")
        old = ticket.priority
        if priority == old:
            return old
        if ticket.state is TicketState.WAITING:
            queue = self._ready[ticket.quota.model]
            # Out of both lanes, with any stale copy left from an earlier wait (those were counted dead).
            copies = 0
            for lane_priority in (old, priority):
                lane = queue.by_priority[lane_priority]
                copies += sum(1 for other in lane if other is ticket)
                queue.by_priority[lane_priority] = deque(other for other in lane if other is not ticket)
            self._dead_in_queues -= copies - 1
            # Into its arrival order in the new lane (lanes are in arrival order but for retries at their front).
            target = queue.by_priority[priority]
            at = next((i for i, other in enumerate(target) if other.seq > ticket.seq), len(target))
            target.insert(at, ticket)
            queue.next_room_at = 0.0
        if ticket.state.queued:
            self._depth[old] -= 1
            self._depth[priority] += 1
        ticket.priority = priority
        self._kick()
        return old

    def _cancel_ticket(self, ticket: _Ticket, reason: MedopsError) -> None:
        if ticket.state is TicketState.SENDING and ticket.runner is not None:
            ticket.stop_reason = reason
            ticket.runner.cancel()
        elif ticket.state.queued:
            self._finish_waiting(ticket, reason, "cancelled")
            self._kick()

    # --- state ----------------------------------------------------------------

    def _move(self, ticket: _Ticket, state: TicketState) -> None:
        """The one way a ticket changes state: keeps the depth per priority and the in-flight count.

        A ticket leaving `waiting` other than for a slot stays in its model's lane, dead, until a head
        look or a compaction drops it (dispatch takes a ticket off its lane before it asks or sends)."""
        was = ticket.state
        if was.queued != state.queued:
            self._depth[ticket.priority] += 1 if state.queued else -1
        if was.holds_slot != state.holds_slot:
            self._in_flight += 1 if state.holds_slot else -1
        if was is TicketState.WAITING and not state.holds_slot:
            self._dead_in_queues += 1
        ticket.state = state

    # --- dispatch -------------------------------------------------------------

    def _kick(self) -> None:
        """Send what can be sent now; wake the timer loop only if it must wake earlier."""
        self._dispatch()
        wake_at = self._next_wake()
        if wake_at is not None and (self._sleeping_until is None or wake_at < self._sleeping_until):
            self._wake.set()

    def _dispatch(self) -> None:
        if not self._running:
            return
        now = self._clock.monotonic()
        self._close_batches(now)
        self._expire_deadlines(now)
        self._end_backoffs(now)
        if self.paused:
            return
        bound = self.starvation_bound
        while self._in_flight < self.concurrency:
            best: _Ticket | None = None
            best_rank: tuple[int, int] | None = None
            for queue in self._ready.values():
                if queue.next_room_at > now or queue.asking:
                    continue
                head = self._admissible_head(queue, now, bound)
                if head is None:
                    continue
                rank = _rank(head, now, bound)
                if best_rank is None or rank < best_rank:
                    best, best_rank = head, rank
            if best is None:
                return
            queue = self._ready[best.quota.model]
            queue.remove_head(best)
            self._start_attempt(best, queue, now)

    def _start_attempt(self, ticket: _Ticket, queue: _ModelQueue, now: float) -> None:
        """The head goes: one task asks its quota, holding a concurrency slot meanwhile (`admitting`), then sends.

        The same for every quota. Its model asks nothing more until this answer is in (one admission at a time
        keeps the order within a model); other models go on."""
        self._move(ticket, TicketState.ADMITTING)
        queue.asking = True
        ticket.runner = asyncio.create_task(self._attempt(ticket, queue, now - ticket.submitted_at))

    async def _attempt(self, ticket: _Ticket, queue: _ModelQueue, waited: float) -> None:
        answer: Reservation | float | Exception
        if ticket.state is not TicketState.ADMITTING:  # cancelled or expired before its turn came: nothing to ask
            queue.asking = False
            self._kick()
            return
        try:
            answer = await ticket.quota.admit(ticket.tokens, int(ticket.priority), waited)
        except Exception as error:  # the caller must hear of every failure
            answer = error
        finally:  # cancelled too (stop): the model may ask again
            queue.asking = False
        if isinstance(answer, Reservation) and ticket.state is TicketState.ADMITTING:
            self._launch(ticket, answer, self._clock.monotonic())
            if len(queue):
                self._kick()  # the model's next head may ask now
            await self._send(ticket)  # it settles the reservation (or releases it), and kicks
            return
        if isinstance(answer, Reservation):
            ticket.quota.release(answer)  # cancelled or expired while asking: never sent
        elif ticket.state is TicketState.ADMITTING:
            self._not_admitted(ticket, queue, answer)
        self._kick()

    def _not_admitted(self, ticket: _Ticket, queue: _ModelQueue, answer: float | Exception) -> None:
        """The quota said wait (or failed): back to the front of its lane, or refused if it must fail fast."""
        if isinstance(answer, Exception):
            self._finish(ticket, answer, "error")
        elif ticket.request.fail_fast and answer > 0:  # a wait of none is "room now: ask again"
            quota = ticket.quota
            self._finish(ticket, QuotaExhausted(
                f"{quota.model} has no room for {ticket.tokens:,} tokens now ({quota.blocking(ticket.tokens)}); "
                "submit without fail_fast to wait in the queue", answer), "refused")
        else:
            self._make_ready(ticket, front=True)
            # A wait the quota cannot end (the server lowered a limit below the request): look again in a minute.
            queue.next_room_at = self._clock.monotonic() + (answer if math.isfinite(answer) else 60.0)

    def _admissible_head(self, queue: _ModelQueue, now: float, bound: float) -> _Ticket | None:
        """The model's head if its quota has room now; else note when it will (the head keeps its place)."""
        while True:
            head, dropped = queue.head(now, bound)
            self._dead_in_queues -= dropped
            if head is None:
                return None
            if self._park_if_flex_held(head, now):
                continue
            wait = head.quota.wait_time(head.tokens)
            if wait <= 0:
                return head
            if not math.isfinite(wait):
                # The server lowered a limit below this request's size since it was queued.
                try:
                    head.quota.check_size(head.tokens)
                except RequestTooLarge as too_large:
                    self._finish_waiting(head, too_large, "refused")
                    continue
            if head.request.fail_fast:
                try:
                    self._refuse_if_no_room(head.quota, head.tokens)
                except QuotaExhausted as exhausted:
                    self._finish_waiting(head, exhausted, "refused")
                    continue
            queue.next_room_at = now + (wait if math.isfinite(wait) else 60.0)
            return None

    def _launch(self, ticket: _Ticket, reservation: Reservation, now: float) -> None:
        """Admitted: the attempt is sent now (its task goes on into `_send`)."""
        self._move(ticket, TicketState.SENDING)
        ticket.sent_at = now
        ticket.attempts += 1
        self._waits[ticket.priority].add(now - ticket.submitted_at)
        ticket.reservation = reservation

    async def _send(self, ticket: _Ticket) -> None:
        ending: Completion | BaseException = asyncio.CancelledError()  # stays so if the send is cancelled
        try:
            ending = await self._call_sender(ticket)
        except Exception as error:  # the caller must hear of every failure, whatever raised it
            ending = error
        finally:
            self._end_attempt(ticket, ending)

    def _end_attempt(self, ticket: _Ticket, ending: Completion | BaseException) -> None:
        """Settle or release the attempt's reservation by how it ended, then answer, requeue or retry the request."""
        quota = ticket.quota
        reservation = ticket.reservation
        ticket.reservation = None
        assert reservation is not None
        # What the server said first: its headers were computed with our reservation still counted.
        if isinstance(ending, Completion):
            quota.observe_headers(ending.headers)
        elif isinstance(ending, RateLimited):
            quota.observe_429(ending.retry_after, ending.limit, ending.headers)
        spent = _spent(ending)
        if spent is _Spent.NOTHING:
            quota.release(reservation)
        elif spent is _Spent.NO_TOKENS:
            quota.settle(reservation, 0)
        elif isinstance(ending, Completion):
            quota.settle(reservation, ending.counted_tokens)
        else:
            quota.settle(reservation, reservation.tokens)
        if spent in (_Spent.USED, _Spent.NO_TOKENS):
            self._ready[quota.model].next_room_at = 0.0  # room may have come back early
        self._after_attempt(ticket, ending)
        self._kick()

    def _after_attempt(self, ticket: _Ticket, ending: Completion | BaseException) -> None:
        """What becomes of the request once its attempt is settled: answered, queued again, retried or ended."""
        if isinstance(ending, Completion):
            if self._capacity_streaks:  # the tier has capacity again: its next hold starts short
                self._capacity_streaks.pop((ticket.quota.model, ticket.request.chat.tier), None)
            self._succeed(ticket, ending)
        elif isinstance(ending, asyncio.CancelledError):
            reason = ticket.stop_reason or RequestCancelled(f"request {ticket.request.request_id} was cancelled")
            self._finish(ticket, reason, "cancelled")
        elif isinstance(ending, RateLimited):
            ticket.rate_limits += 1
            if ticket.rate_limits >= MAX_RATE_LIMITED_ATTEMPTS:
                self._finish(ticket, ending, "rate_limited", status=429)
            else:
                self._queue_again(ticket)
        elif isinstance(ending, UpstreamUnavailable):
            self._retry_later(ticket, ending)
        elif isinstance(ending, CapacityExceeded):
            self._hold_model(ticket)
            self._retry_after_capacity(ticket, ending)
        elif isinstance(ending, RequestRejected):
            self._finish(ticket, ending, "rejected", status=ending.status)
        elif isinstance(ending, DeadlineExceeded):
            self._finish(ticket, ending, "timeout")
        else:
            self._finish(ticket, ending, "failed" if isinstance(ending, GroqError) else "error")

    async def _call_sender(self, ticket: _Ticket) -> Completion:
        default = self._settings.request_timeout  # one attempt: the retries are ours
        sent_at = ticket.sent_at if ticket.sent_at is not None else ticket.submitted_at
        attempt = Attempt(ticket.attempts, sent_at - ticket.submitted_at)
        if ticket.deadline_at is None:
            return await self._sender.send(ticket.request, default, attempt)
        left = ticket.deadline_at - self._clock.monotonic()
        return await self._race_deadline(self._sender.send(ticket.request, min(left, default), attempt), left,
                                         ticket)

    async def _race_deadline(self, send: Coroutine[Any, Any, Completion], left: float, ticket: _Ticket) -> Completion:
        sending = asyncio.ensure_future(send)
        timer = asyncio.ensure_future(self._clock.sleep(left))
        try:
            await asyncio.wait((sending, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sending.done():
                sending.cancel()
            timer.cancel()
        if sending.cancelled() or not sending.done():
            raise DeadlineExceeded(f"request {ticket.request.request_id} passed its deadline of "
                                   f"{ticket.request.deadline:g} s while Groq was answering")
        return sending.result()

    # --- retries --------------------------------------------------------------

    def _queue_again(self, ticket: _Ticket) -> None:
        """Back to the front of its lane: the next attempt is admitted by the quota like any other."""
        self._make_ready(ticket, front=True)
        self._push_deadline(ticket)

    def _retry_later(self, ticket: _Ticket, failure: UpstreamUnavailable) -> None:
        """After a 5xx, timeout or connection error: wait a jittered backoff, then queue again; or give up."""
        ticket.failures += 1
        ticket.last_failure = failure
        max_retries = self._settings.max_retries
        if ticket.failures > max_retries:
            self._finish(ticket, self._gave_up(ticket, f"max_retries is {max_retries}"), "failed", failure.status)
            return
        now = self._clock.monotonic()
        pause = self._retry_backoff.delay(ticket.failures - 1)
        if ticket.deadline_at is not None and now + pause >= ticket.deadline_at:
            self._finish(ticket, self._gave_up(ticket, f"its deadline of {ticket.request.deadline:g} s leaves no "
                                                       "time for another"), "timeout", failure.status)
            return
        self.retried += 1
        self._move(ticket, TicketState.BACKOFF)
        ticket.backoff_until = now + pause
        heapq.heappush(self._backoffs, (now + pause, next(self._seq), ticket))

    def _hold_model(self, ticket: _Ticket) -> None:
        """A 498: hold the tier's sends to the model, twice as long as last time if this attempt went after that
        hold began. Flex requests are held here; the other tiers through the model's quota.

        Attempts sent before the current hold began come back with 498s too; they say nothing new."""
        quota = ticket.quota
        tier = ticket.request.chat.tier
        now = self._clock.monotonic()
        streak, began = self._capacity_streaks.get((quota.model, tier), (0, -math.inf))
        sent_at = ticket.sent_at if ticket.sent_at is not None else now
        if streak and sent_at < began:
            quota.hold_for_capacity(0.0)  # counted; the hold in force already covers it
            return
        hold = self._capacity_hold.delay(streak)
        if tier == "flex":
            quota.hold_for_capacity(0.0)  # counted in the model's figures; only flex requests wait
            self._flex_held_until[quota.model] = max(self._flex_held_until.get(quota.model, 0.0), now + hold)
        else:
            quota.hold_for_capacity(hold)
        self._capacity_streaks[(quota.model, tier)] = (streak + 1, now)

    def _capacity_hold_left(self, ticket: _Ticket, now: float) -> float:
        """Seconds the capacity hold that applies to this request's tier still runs."""
        if ticket.request.chat.tier == "flex":
            return max(0.0, self._flex_held_until.get(ticket.quota.model, 0.0) - now)
        return ticket.quota.capacity_hold

    def _park_if_flex_held(self, ticket: _Ticket, now: float) -> bool:
        """A waiting flex request whose model's flex tier is held waits out the hold beside the queue (as a
        backoff), so the model's other requests behind it go on. True if it was parked."""
        left = self._capacity_hold_left(ticket, now) if ticket.request.chat.tier == "flex" else 0.0
        if left <= 0:
            return False
        self._move(ticket, TicketState.BACKOFF)  # the queue drops it lazily
        ticket.backoff_until = now + left
        heapq.heappush(self._backoffs, (now + left, next(self._seq), ticket))
        return True

    def _retry_after_capacity(self, ticket: _Ticket, over: CapacityExceeded) -> None:
        """Queue a request refused with 498 again (its model is held), or give up past the bound or deadline."""
        ticket.capacity_refusals += 1
        ticket.last_failure = over
        if ticket.capacity_refusals >= MAX_CAPACITY_ATTEMPTS:
            self._finish(ticket, self._gave_up(ticket, f"{MAX_CAPACITY_ATTEMPTS} answers of 498 in a row"),
                         "failed", 498)
            return
        now = self._clock.monotonic()
        held_until = now + self._capacity_hold_left(ticket, now)
        if ticket.deadline_at is not None and held_until >= ticket.deadline_at:
            self._finish(ticket, self._gave_up(ticket, f"its deadline of {ticket.request.deadline:g} s ends "
                                                       "before the hold"), "timeout", 498)
            return
        self.retried += 1
        self._queue_again(ticket)

    def _gave_up(self, ticket: _Ticket, why: str) -> MedopsError:
        """What the caller hears when retrying ends: the last failure's reason and how many attempts were made."""
        last = ticket.last_failure
        rid = ticket.request.request_id
        if isinstance(last, CapacityExceeded):
            return CapacityExceeded(
                f"{ticket.quota.model} was over capacity (HTTP 498) for request {rid}: {ticket.attempts} attempts, "
                f"stopped because {why}; try again later or use another model", attempts=ticket.attempts)
        assert last is not None
        # The last failure's kind carries on (a timeout stays a TimedOut): callers count timeouts apart from 5xx.
        kind = type(last) if isinstance(last, UpstreamUnavailable) else UpstreamUnavailable
        return kind(
            f"request {rid} failed after {ticket.attempts} attempts, stopped because {why}; last: {last}; "
            "check the network and that endpoint (Groq's status page, or that the local endpoint runs), then retry",
            reason=last.reason, attempts=ticket.attempts, status=last.status)

    def _end_backoffs(self, now: float) -> None:
        heap = self._backoffs
        while heap and (heap[0][0] <= now or heap[0][2].state is not TicketState.BACKOFF):
            _, _, ticket = heapq.heappop(heap)
            if ticket.state is TicketState.BACKOFF:
                self._make_ready(ticket, front=True)

    # --- endings --------------------------------------------------------------

    def _succeed(self, ticket: _Ticket, completion: Completion) -> None:
        now = self._clock.monotonic()
        sent_at = ticket.sent_at if ticket.sent_at is not None else now
        result = PromptResult(completion, queue_wait=sent_at - ticket.submitted_at,
                              latency=now - ticket.submitted_at, attempts=ticket.attempts,
                              quota_left=MappingProxyType(ticket.quota.remaining()))
        self._tickets.pop(ticket.request.request_id, None)
        self._move(ticket, TicketState.DONE)
        self.completed += 1
        self._record(ticket.request, ticket.quota.model, completion.prompt_tokens, completion.completion_tokens,
                     result.latency, result.queue_wait, "ok", 200, attempts=ticket.attempts, answer=completion)
        if not ticket.future.done():
            ticket.future.set_result(result)

    def _finish_waiting(self, ticket: _Ticket, error: BaseException, outcome: str) -> None:
        """End a request that is not in flight: out of its batch (a queue drops it lazily)."""
        if ticket.state is TicketState.BATCHING:
            batch = self._batches.get(ticket.request.agent)
            if batch is not None and ticket in batch[1]:
                batch[1].remove(ticket)
        self._finish(ticket, error, outcome)
        if self._dead_in_queues > max(64, sum(self._depth.values())):
            self._compact()

    def _finish(self, ticket: _Ticket, error: BaseException, outcome: str, status: int | None = None) -> None:
        self._tickets.pop(ticket.request.request_id, None)
        self._move(ticket, TicketState.DONE)
        self.failed += 1
        now = self._clock.monotonic()
        sent_at = ticket.sent_at if ticket.sent_at is not None else now
        self._record(ticket.request, ticket.quota.model, 0, 0, now - ticket.submitted_at,
                     sent_at - ticket.submitted_at, outcome, status, attempts=ticket.attempts)
        if not ticket.future.done():
            ticket.future.set_exception(error)
            # Mark it retrieved: a caller that already gave up must not trigger "exception never retrieved".
            ticket.future.exception()

    def _compact(self) -> None:
        for queue in self._ready.values():
            for priority, lane in queue.by_priority.items():
                queue.by_priority[priority] = deque(t for t in lane if t.state is TicketState.WAITING)
        self._dead_in_queues = 0

    def _record(self, request: PromptRequest, model: str, prompt_tokens: int, completion_tokens: int,
                latency: float, queue_wait: float, outcome: str, status: int | None = None, *,
                attempts: int = 0, answer: Completion | None = None) -> None:
        if self._recorder is None:
            return
        self._recorder.record_request(RequestRecord(
            at_wall=self._clock.wall(), agent=request.agent, priority=request.priority.label, model=model,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, latency=latency,
            queue_wait=queue_wait, outcome=outcome, status=status, attempts=attempts,
            request_id=request.request_id, client=request.client or "",
            finish_reason=answer.finish_reason if answer else "", tool_calls=len(answer.tool_calls) if answer else 0,
            cached_tokens=answer.cached_tokens if answer else 0,
            reasoning_tokens=answer.reasoning_tokens if answer else 0,
            service_tier=answer.service_tier if answer else ""))

    # --- timers ---------------------------------------------------------------

    def _close_batches(self, now: float) -> None:
        due = [agent for agent, (closes_at, _) in self._batches.items() if closes_at <= now]
        for agent in due:
            _, tickets = self._batches.pop(agent)
            # Within the agent's batch: higher priority first, then arrival order.
            for ticket in sorted(tickets, key=lambda t: (-int(t.priority), t.seq)):
                self._make_ready(ticket)

    def _expire_deadlines(self, now: float) -> None:
        heap = self._deadlines
        while heap and (heap[0][0] <= now or heap[0][2].state is TicketState.DONE):
            deadline_at, _, ticket = heapq.heappop(heap)
            if deadline_at <= now and ticket.state.queued:
                quota = ticket.quota
                error: MedopsError = DeadlineExceeded(
                    f"request {ticket.request.request_id} waited its whole deadline of {ticket.request.deadline:g} s "
                    f"in the queue ({quota.blocking(ticket.tokens)}); retry later or give it a longer deadline")
                if ticket.last_failure is not None:  # the caller hears what kept failing, not only the wait
                    error = self._gave_up(ticket, f"its deadline of {ticket.request.deadline:g} s passed before "
                                                  f"another attempt ({quota.blocking(ticket.tokens)})")
                self._finish_waiting(ticket, error, "timeout")

    def _next_wake(self) -> float | None:
        times = [closes_at for closes_at, _ in self._batches.values()]
        times += [q.next_room_at for q in self._ready.values() if q.next_room_at > 0 and len(q)]
        if self._backoffs:
            times.append(self._backoffs[0][0])
        if self._deadlines:
            times.append(self._deadlines[0][0])
        return min(times) if times else None

    async def _timer_loop(self) -> None:
        while self._running:
            self._wake.clear()
            self._dispatch()
            wake_at = self._next_wake()
            self._sleeping_until = wake_at
            if wake_at is None:
                await self._wake.wait()
                continue
            waiter = asyncio.ensure_future(self._wake.wait())
            sleeper = asyncio.ensure_future(self._clock.sleep(max(0.0, wake_at - self._clock.monotonic())))
            try:
                await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                sleeper.cancel()

    # --- reporting ------------------------------------------------------------

    def snapshot(self) -> SchedulerSnapshot:
        """Queue depth, wait p50/p95 (recent sends and those still waiting) and the requests promoted into
        it by waiting, per priority; in flight."""
        now = self._clock.monotonic()
        ages: dict[Priority, list[float]] = {p: [] for p in PRIORITIES_HIGH_FIRST}
        promoted = dict.fromkeys(PRIORITIES_HIGH_FIRST, 0)
        for ticket in self._tickets.values():
            if ticket.state.queued:
                waited = now - ticket.submitted_at
                ages[ticket.priority].append(waited)
                effective = effective_priority(ticket.priority, waited, self.starvation_bound)
                if effective != ticket.priority:
                    promoted[effective] += 1
        queues = []
        for priority in PRIORITIES_HIGH_FIRST:
            p50, p95 = self._waits[priority].percentiles(ages[priority])
            queues.append(PriorityQueue(priority.label, self._depth[priority], p50, p95, promoted[priority]))
        return SchedulerSnapshot(tuple(queues), self._in_flight, self.concurrency, self.completed, self.failed,
                                 self.rejected, self.paused, self.retried, self.request_rows(),
                                 len(self._tickets))

    def request_rows(self, limit: int = REQUEST_ROWS) -> tuple[RequestRow, ...]:
        """The `limit` most urgent requests held (in flight, then in the order they would be sent), each with why
        it waits."""
        now, wall = self._clock.monotonic(), self._clock.wall()
        bound = self.starvation_bound
        # In flight first, then in the order they would be sent.
        ordered = sorted(self._tickets.values(), key=lambda t: (not t.state.holds_slot, _rank(t, now, bound)))
        store = self._quotas.store_snapshot()
        unreached = store_never_reached(store)  # no window is full: nothing is admitted at all
        quotas: dict[str, ModelQuota] = {}
        waits: dict[tuple[str, int], Wait | None] = {}
        ahead: dict[str, dict[str, int]] = {}  # model -> the waiting requests ranked before, by class
        rows = []
        for ticket in ordered[:limit]:
            model = ticket.quota.model
            effective = effective_priority(ticket.priority, now - ticket.submitted_at, bound)
            before = ahead.setdefault(model, {p.label: 0 for p in PRIORITIES_HIGH_FIRST})
            wait = self._why_waiting(ticket, now, wall, store is not None and store.state == "seeding",
                                     store is not None, quotas, waits, before,
                                     store is not None and store.state == "up", unreached)
            if ticket.state is TicketState.WAITING:
                before[effective.label] += 1
            request = ticket.request
            rows.append(RequestRow(
                request.request_id, request.agent, request.client or "", ticket.priority.label, effective.label,
                request.max_priority.label, model, ticket.tokens, now - ticket.submitted_at,
                ticket.deadline_at - now if ticket.deadline_at is not None else None,
                ticket.state.value,  # type: ignore[arg-type]  # held: never new or done
                wait.reason, wait.until, ticket.attempts,
                now - ticket.sent_at if ticket.state is TicketState.SENDING and ticket.sent_at is not None else 0.0,
                deferred=wait.deferred))
        return tuple(rows)

    def _why_waiting(self, ticket: _Ticket, now: float, wall: float, seeding: bool, fleet: bool,
                     quotas: dict[str, ModelQuota], waits: dict[tuple[str, int], Wait | None],
                     before: dict[str, int], store_up: bool = False, unreached: Wait | None = None) -> Wait:
        """One request's wait in words. `quotas` and `waits` keep each model's answers for the other rows.
        Put off by a store that answers while the fleet's windows have room: `deferred` (its line decided)."""
        state = ticket.state
        if state is TicketState.SENDING:
            return Wait(f"at Groq, attempt {ticket.attempts}")
        if state is TicketState.ADMITTING:
            return Wait("asking the fleet's store" if fleet else "being admitted")
        if state is TicketState.BATCHING:
            closes_at = self._batches.get(ticket.request.agent, (now, []))[0]
            return Wait(f"batch window closes in {seconds(closes_at - now)}", wall + closes_at - now)
        if state is TicketState.BACKOFF:
            left = ticket.backoff_until - now
            if isinstance(ticket.last_failure, CapacityExceeded) or ticket.last_failure is None:
                return Wait(f"{ticket.request.chat.tier} tier held (498) for {seconds(left)}", wall + left)
            status = ticket.last_failure.status
            after = f"HTTP {status}" if status else "a connection error or timeout"
            return Wait(f"retry {ticket.failures} after {after} in {seconds(left)}", wall + left)
        queue_behind = behind(before, fleet)
        if self.paused:
            return Wait("intake paused")
        model = ticket.quota.model
        if seeding:
            return Wait("store seeding")
        if unreached is not None:  # and the core gives it up at store_wait after it was submitted
            gives_up = wall - (now - ticket.submitted_at) + self._settings.store_wait
            return Wait(f"{unreached.reason}; gives up at {wall_text(gives_up, wall)} (store_wait)", gives_up)
        key = (model, ticket.tokens)
        if key not in waits:
            if model not in quotas:
                quotas[model] = ticket.quota.snapshot()
            waits[key] = quota_wait(quotas[model], ticket.tokens, ticket.quota.wait_time(ticket.tokens), wall)
        found = waits[key]
        queue = self._ready.get(model)
        if found is None and queue is not None and queue.next_room_at > now:
            left = queue.next_room_at - now
            found = Wait(f"{'the fleet' if fleet else 'the quota'} has room in {seconds(left)}", wall + left,
                         deferred=store_up)
        if found is None and self._in_flight >= self.concurrency:
            found = Wait(f"concurrency cap {self._in_flight}/{self.concurrency}")
        if found is None:
            return Wait(queue_behind or "next to send")
        return Wait(f"{found.reason}; {queue_behind}", found.until, found.deferred) if queue_behind else found

    def waiting_for(self, model: str) -> int:
        """Requests queued for one model (ready, or backing off before another attempt), for per-model views."""
        return sum(1 for t in self._tickets.values() if t.state.ready
                   and t.quota.model == model)
