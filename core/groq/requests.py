"""What a prompt is, what Groq answers, and the gateway's contract for sending one.

Values shared by the scheduler (which queues and admits) and the gateway (which
sends one request over HTTP); the gateway's errors are in errors.py, what the
ledger records in ledger/records.py. No behaviour lives here beyond validating a request.
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

from medops.core.errors import SchedulerError
from medops.core.groq.rate_headers import RateLimitHeaders

DEFAULT_MAX_COMPLETION_TOKENS = 1_024
# The agent types a prompt may be sent for: the assistant's four, and the on-call engineer's own
# (`medops ask` and the console, by default). The one list: the CLI, the console's form and history use it.
AGENTS = ("triage", "diagnosis", "medication", "documentation", "oncall")


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
        if self.agent not in AGENTS:
            # It goes into the ledger verbatim: one of the known set, never free text that could be a patient's
            # name or MRN, so a refused one is not echoed either.
            raise InvalidRequest(f"agent must be one of {', '.join(AGENTS)} (this one is {len(self.agent):,} "
                                 "characters and was not echoed)")
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
    cached_tokens: int = 0  # of prompt_tokens, served from Groq's prompt cache

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def counted_tokens(self) -> int:
        """What Groq's token limits count: cached prompt tokens are given back after processing."""
        return self.total_tokens - min(self.cached_tokens, self.prompt_tokens)


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
