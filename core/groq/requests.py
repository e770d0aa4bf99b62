"""What a prompt is, what Groq answers, and the gateway's contract for sending one.

Values shared by the scheduler (which queues and admits) and the gateway (which
sends one request over HTTP); the gateway's errors are in errors.py, what the
ledger records in ledger/records.py. No behaviour lives here beyond validating a request.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from medops.core.groq.chat import (
    OWN_FIELDS,
    Chat,
    ChatRefused,
    InvalidRequest,
    ToolCall,
    parse_chat,
    prompt_chat,
)
from medops.core.groq.rate_headers import RateLimitHeaders
from medops.core.groq.token_estimate import estimate_chat_tokens

__all__ = ["AGENTS", "DEFAULT_MAX_COMPLETION_TOKENS", "Attempt", "ChatRefused", "Completion", "InvalidRequest",
           "OnChunk", "Priority", "PromptRequest", "PromptResult", "Sender", "ToolCall"]

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


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _new_request_id() -> str:
    return uuid.uuid4().hex


class Attempt(NamedTuple):
    """Which HTTP attempt a streamed answer comes from, and how long its request waited before it."""

    number: int
    queue_wait: float


# A streamed chunk's JSON exactly as Groq sent it, with the attempt it belongs to. Awaited (so a slow reader
# slows the stream, nothing piles up); what it raises (the client hung up) ends the request, unretried.
OnChunk = Callable[[bytes, Attempt], Awaitable[None]]
CLIENT = re.compile(r"[A-Za-z0-9._@:-]{1,64}")


@dataclass(frozen=True)
class PromptRequest:
    """One chat request an agent wants answered. `deadline` is seconds from submit.

    Either `prompt` (one user message, after an optional `system` prompt) or `messages` (Groq's
    conversation: system/developer, user with text and image_url parts, assistant with tool_calls and
    reasoning, tool results with tool_call_id); `params` holds the chat request's other fields as Groq's
    API names them (tools, tool_choice, response_format, temperature, service_tier, reasoning_effort...),
    passed through as given once checked. `chat` is the checked whole."""

    prompt: str | None = field(default=None, repr=False)
    agent: str = ""
    priority: Priority = Priority.NORMAL
    model: str | None = None  # None: the configured default model
    max_completion_tokens: int = DEFAULT_MAX_COMPLETION_TOKENS
    deadline: float | None = None
    fail_fast: bool = False  # refuse at once instead of waiting for quota
    request_id: str = field(default_factory=_new_request_id)
    # Set: the answer is streamed, and this gets the text so far after each piece (from "" again if an
    # attempt fails and another is made). Called on the event loop; keep it quick.
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    messages: Sequence[Mapping[str, Any]] | None = field(default=None, compare=False, repr=False)
    system: str | None = field(default=None, compare=False, repr=False)
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)
    client: str | None = None  # who sent it: a gateway key's name (recorded beside the agent)
    max_priority: Priority = Priority.CRITICAL  # the most an operator may raise it to (a gateway key's bound)
    on_chunk: OnChunk | None = field(default=None, compare=False, repr=False)
    chat: Chat = field(init=False, compare=False, repr=False)
    prompt_estimate: int = field(init=False, compare=False, repr=False)  # tokens reserved before the answer

    def __post_init__(self) -> None:
        if not isinstance(self.agent, str) or not self.agent.strip():
            raise InvalidRequest("agent must name the agent type (e.g. triage); it was empty")
        if self.agent not in AGENTS:
            # It goes into the ledger verbatim: one of the known set, never free text that could be a patient's
            # name or MRN, so a refused one is not echoed either.
            raise InvalidRequest(f"agent must be one of {', '.join(AGENTS)} (this one is {len(self.agent):,} "
                                 "characters and was not echoed)")
        object.__setattr__(self, "priority", Priority.parse(self.priority))
        object.__setattr__(self, "max_priority", Priority.parse(self.max_priority))
        if self.priority > self.max_priority:
            raise InvalidRequest(f"priority {self.priority.label} is above the request's max_priority "
                                 f"{self.max_priority.label}")
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
        if self.client is not None and (not isinstance(self.client, str) or not CLIENT.fullmatch(self.client)):
            raise InvalidRequest("client must be 1 to 64 letters, digits, '.', '_', '@', ':' or '-' (a key's name)")
        object.__setattr__(self, "chat", self._parsed_chat())
        object.__setattr__(self, "prompt_estimate", estimate_chat_tokens(self.chat))

    def _parsed_chat(self) -> Chat:
        if self.messages is None:
            if not isinstance(self.prompt, str):
                raise InvalidRequest(f"prompt must be text, not {type(self.prompt).__name__}; or give messages")
            if self.system is not None and not isinstance(self.system, str):
                raise InvalidRequest(f"system must be text, not {type(self.system).__name__}")
            chat = prompt_chat(self.prompt, self.system or None)
            return parse_chat(list(chat.messages), self.params) if self.params else chat
        if self.prompt is not None or self.system is not None:
            raise InvalidRequest("give either prompt (and system) or messages, not both")
        return parse_chat(self.messages, self.params)

    @property
    def streamed(self) -> bool:
        """Whether the answer is streamed (someone listens to its text or its chunks)."""
        return self.on_text is not None or self.on_chunk is not None

    @classmethod
    def from_body(cls, body: Mapping[str, Any], *, agent: str, priority: Priority | str = Priority.NORMAL,
                  deadline: float | None = None, client: str | None = None, on_chunk: OnChunk | None = None,
                  request_id: str | None = None, max_priority: Priority | str = Priority.CRITICAL) -> PromptRequest:
        """A request from a chat request body as a client sends it to Groq (model, messages, stream, the token
        cap and every other field); `ChatRefused` says what Groq would refuse. Without a token cap the answer
        is capped at `DEFAULT_MAX_COMPLETION_TOKENS`, so what is reserved bounds what it may cost."""
        if not isinstance(body, Mapping):
            raise ChatRefused("the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            raise ChatRefused("'model' : property 'model' is missing", param="model")
        tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if tokens is None:
            tokens = DEFAULT_MAX_COMPLETION_TOKENS
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ChatRefused("'max_completion_tokens' : must be an integer of at least 1",
                              param="max_completion_tokens")
        if body.get("stream") not in (None, True, False):
            raise ChatRefused("'stream' : value must be a boolean", param="stream")
        params = {name: value for name, value in body.items() if name not in OWN_FIELDS}
        request = cls(agent=agent, priority=Priority.parse(priority), model=model, max_completion_tokens=tokens,
                      deadline=deadline, messages=body.get("messages"), params=params, client=client,
                      on_chunk=on_chunk if body.get("stream") is True else None,
                      max_priority=Priority.parse(max_priority))
        return request if request_id is None else replace(request, request_id=request_id)


@dataclass(frozen=True)
class Completion:
    """Groq's answer to one request: its message, usage and the rate-limit headers it carried.

    `body` is the whole answer as Groq returned it (a streamed one put together as its
    non-streamed form), for callers that pass it on as it is (the gateway)."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    queue_time: float | None = None  # Groq's usage.queue_time, seconds
    total_time: float | None = None  # Groq's usage.total_time, seconds
    request_id: str | None = None  # Groq's x_groq.id
    headers: RateLimitHeaders = field(default_factory=RateLimitHeaders)
    cached_tokens: int = 0  # of prompt_tokens, served from Groq's prompt cache
    finish_reason: str = "stop"  # stop, length, tool_calls
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    reasoning_tokens: int = 0  # of completion_tokens
    service_tier: str = "on_demand"  # the tier that answered
    body: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message as Groq returns it, ready to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text if self.text or not self.tool_calls
                                   else None}
        if self.tool_calls:
            message["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": call.arguments}}
                                     for call in self.tool_calls]
        if self.reasoning is not None:
            message["reasoning"] = self.reasoning
        return message

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
    """Makes one HTTP attempt at a request (the sender); the scheduler calls it once per admission.

    Never retries: every attempt may be counted by Groq, so each one goes through the
    quota first, and the scheduler owns the retries. The request's `model` is always set;
    `timeout` is the seconds this attempt may take; `attempt` is handed to `on_chunk`.
    """

    # The contract's timeout is this one attempt's; the sender hands it to the SDK.
    async def send(self, request: PromptRequest, timeout: float, attempt: Attempt) -> Completion:  # noqa: ASYNC109
        """Send once; raise `UpstreamUnavailable`/`CapacityExceeded` (retryable), `RateLimited` or `RequestRejected`.

        A stream that breaks after `on_chunk` was given a piece raises `StreamBrokeOff` (never retried:
        the listener cannot take the answer back)."""
        ...
