"""What a prompt is, what Groq answers, and the contracts around sending one.

Values shared by the scheduler (which queues and admits), the gateway (which
sends one request over HTTP) and the ledger (which records admissions and
requests). No behaviour lives here beyond validating a request.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Protocol

from medops.core.errors import GatewayError, SchedulerError
from medops.core.groq.rate_headers import LimitExceeded, RateLimitHeaders, format_go_duration

DEFAULT_MAX_COMPLETION_TOKENS = 1_024


class Priority(IntEnum):
    """How urgent a prompt is; a larger value is served first (critical > high > normal)."""

    NORMAL = 0
    HIGH = 1
    CRITICAL = 2

    @classmethod
    def parse(cls, value: str | Priority) -> Priority:
        """A priority from its name ("critical", "high", "normal"), or a clear error."""
        if isinstance(value, Priority):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise InvalidRequest(f"priority {value!r} is not one of critical, high, normal") from None

    @property
    def label(self) -> str:
        """The lower-case name shown in snapshots and the ledger."""
        return self.name.lower()


class InvalidRequest(SchedulerError):
    """A prompt request is malformed (empty agent, non-positive token budget...)."""


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The assistant's agent types; other agents (oncall, a bench's agent3) need a short label of this form.
KNOWN_AGENTS = ("triage", "diagnosis", "medication", "documentation")
AGENT_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class PromptRequest:
    """One prompt an agent wants answered. `deadline` is seconds from submit."""

    prompt: str
    agent: str
    priority: Priority = Priority.NORMAL
    model: str | None = None  # None: the configured default model
    max_completion_tokens: int = DEFAULT_MAX_COMPLETION_TOKENS
    deadline: float | None = None
    fail_fast: bool = False  # refuse at once instead of waiting for quota
    request_id: str = field(default_factory=_new_request_id)
    # Set: the answer is streamed, and this gets the text so far after each piece (from "" again if an
    # attempt fails and another is made). Called on the event loop; keep it quick.
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InvalidRequest(f"prompt must be text, not {type(self.prompt).__name__}")
        if not isinstance(self.agent, str) or not self.agent.strip():
            raise InvalidRequest("agent must name the agent type (e.g. triage); it was empty")
        if self.agent not in KNOWN_AGENTS and not AGENT_LABEL.fullmatch(self.agent):
            # It goes into the ledger verbatim: a label, never free text that could be a patient's name or MRN.
            raise InvalidRequest(f"agent must be one of {', '.join(KNOWN_AGENTS)}, or a label of 1 to 32 lower-case "
                                 f"letters, digits, '_' or '-' starting with a letter (this one is "
                                 f"{len(self.agent):,} characters and was not echoed)")
        object.__setattr__(self, "priority", Priority.parse(self.priority))
        tokens = self.max_completion_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise InvalidRequest(f"max_completion_tokens must be a whole number of at least 1, not {tokens!r}")
        if self.deadline is not None and (
            isinstance(self.deadline, bool) or not isinstance(self.deadline, (int, float))
            or not math.isfinite(self.deadline) or self.deadline <= 0
        ):
            raise InvalidRequest(f"deadline must be a positive number of seconds, not {self.deadline!r}")
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise InvalidRequest("model must be a model name or None for the default")
        if not isinstance(self.request_id, str) or not REQUEST_ID.fullmatch(self.request_id):
            # It is written to the ledger and shown in errors: an id, never text that could hold patient data.
            raise InvalidRequest("request_id must be 1 to 64 letters, digits, '.', '_', ':' or '-'")


@dataclass(frozen=True)
class Completion:
    """Groq's answer to one request, with its usage and the rate-limit headers it carried."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    queue_time: float | None = None  # Groq's usage.queue_time, seconds
    total_time: float | None = None  # Groq's usage.total_time, seconds
    request_id: str | None = None  # Groq's x_groq.id
    headers: RateLimitHeaders = field(default_factory=RateLimitHeaders)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class PromptResult:
    """What `ask` returns: the completion and how it went through the core."""

    completion: Completion
    queue_wait: float  # seconds from submit until sent (the last attempt)
    latency: float  # seconds from submit until answered
    attempts: int  # HTTP attempts: each retry after a 5xx/timeout, a 498 or a 429 is one more
    quota_left: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # window -> remaining


class Sender(Protocol):
    """Makes one HTTP attempt at a request (the gateway); the scheduler calls it once per admission.

    Never retries: every attempt may be counted by Groq, so each one goes through the
    quota first, and the scheduler owns the retries. The request's `model` is always set;
    `timeout` is the seconds this attempt may take.
    """

    # The contract's timeout is this one attempt's; the gateway hands it to the SDK.
    async def send(self, request: PromptRequest, timeout: float) -> Completion:  # noqa: ASYNC109
        """Send once; raise `UpstreamUnavailable`/`CapacityExceeded` (retryable), `RateLimited` or `RequestRejected`."""
        ...


class RateLimited(GatewayError):
    """Groq answered 429: wait `retry_after` seconds; `limit` says which window, if the body said."""

    def __init__(self, retry_after: float | None, limit: LimitExceeded | None = None,
                 headers: RateLimitHeaders | None = None) -> None:
        self.retry_after = retry_after
        self.limit = limit
        self.headers = headers or RateLimitHeaders()
        which = f" on {limit.dimension} (limit {limit.limit}, used {limit.used}, requested {limit.requested})" \
            if limit else ""
        wait = f"retry in {format_go_duration(retry_after)}" if retry_after is not None else "no retry time given"
        super().__init__(f"Groq rate limit reached{which}; {wait}")


class RequestRejected(GatewayError):
    """Groq refused the request itself (400/401/403/404/413); retrying cannot help."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"Groq refused the request (HTTP {status}): {reason}")


class CapacityExceeded(GatewayError):
    """Groq is over capacity for this model (HTTP 498): a signal to hold off, then retry."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class UpstreamUnavailable(GatewayError):
    """Groq could not be reached or failed (5xx, timeout, connection error); `reason` is the last failure.

    The gateway raises it for one attempt (`attempts` 1); the scheduler retries, and tells the
    caller with the attempt count once retries or the deadline run out."""

    def __init__(self, message: str, reason: str | None = None, attempts: int = 1,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message
        self.attempts = attempts
        self.status = status  # the last HTTP status, if the failure was one


class AdmissionStore(Protocol):
    """Durable record of quota admissions, so the day's usage survives a restart.

    `record_admission` must not block the event loop (buffer and write in the
    background). `tokens` may be negative: a settlement giving back an unused
    reservation, stamped with the original admission's `at_wall`.
    """

    def record_admission(self, model: str, at_wall: float, requests: int, tokens: int) -> None:
        """Remember that `requests` and `tokens` were admitted for `model` at `at_wall`."""
        ...

    def load_admissions(self, since_wall: float) -> list[tuple[str, float, int, int]]:
        """Every (model, at_wall, requests, tokens) recorded at or after `since_wall`."""
        ...


@dataclass(frozen=True)
class RequestRecord:
    """One finished request for the ledger: figures only, never prompt text."""

    at_wall: float
    agent: str
    priority: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency: float
    queue_wait: float
    outcome: str  # "ok", "rate_limited", "rejected", "failed", "timeout", "cancelled", "refused"
    status: int | None = None  # HTTP status when there was one
    attempts: int = 0  # HTTP attempts made (0: refused before sending, or recorded before attempts were kept)
    request_id: str = ""  # the PromptRequest's id, as error messages name it ("": recorded before ids were kept)


class RequestRecorder(Protocol):
    """Where finished requests are recorded (the ledger)."""

    def record_request(self, record: RequestRecord) -> None:
        """Record one finished request; must not block the event loop."""
        ...
