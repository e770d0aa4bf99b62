"""Groq's chat-completion wire format, as the local endpoint writes it.

Response bodies, stream chunks, error bodies and the model list, shaped like
api.groq.com's (`usage` with queue/prompt/completion/total time, `x_groq.id`,
`x_groq.usage` on the last stream chunk). Also the endpoint's token count and
its reply text: deterministic, marked as the local endpoint's, and free of
anything that reads like medical advice. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medops.core.groq.chat import ToolCall, content_parts, definitions_json, message_texts
from medops.core.settings.config import ModelLimits

# Token estimate: about four characters a token, plus a few tokens of framing
# per message (role markers), as chat templates add.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
IMAGE_TOKENS = 1_600  # the endpoint's fixed charge for one image_url part

LOCAL_ORGANIZATION = "org_medops_local"
RATE_LIMIT_DOCS = "Visit https://console.groq.com/docs/rate-limits for more information."


def count_tokens(text: str) -> int:
    """Tokens the local endpoint charges for `text` (about four characters each)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def count_prompt_tokens(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None) -> int:
    """Tokens of a chat request before the answer: each message's texts with its framing, a fixed count per
    image, and the JSON text of tool definitions and a response schema."""
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS + count_tokens(_message_text(message))
    total += IMAGE_TOKENS * sum(1 for part in content_parts(messages) if part.get("type") == "image_url")
    return total + sum(count_tokens(text) for text in definitions_json(params or {}))


def _message_text(message: Mapping[str, Any]) -> str:
    return "".join(message_texts(message))


def local_reply(model: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """The endpoint's deterministic reply: says what produced it, never imitates advice.

    It names the prompt only by a short hash and its size, so it echoes no patient data.
    """
    digest = hashlib.sha256(repr([_message_text(m) for m in messages]).encode()).hexdigest()[:12]
    tokens = count_prompt_tokens(messages)
    return (f"[medops local endpoint] Test reply from the local Groq-compatible endpoint, not from a "
            f"language model; it contains no medical content. Model {model}, {len(messages)} message(s), "
            f"{tokens} prompt tokens, prompt digest {digest}.")


def truncate_to_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    """`text` cut to `max_tokens` by this module's count, and whether it was cut."""
    if count_tokens(text) <= max_tokens:
        return text, False
    return text[: max_tokens * CHARS_PER_TOKEN], True


@dataclass(frozen=True)
class Timing:
    """Groq's per-request timing figures, seconds."""

    queue_time: float
    prompt_time: float
    completion_time: float

    @property
    def total_time(self) -> float:
        return self.prompt_time + self.completion_time


def usage_body(prompt_tokens: int, completion_tokens: int, timing: Timing, cached_tokens: int = 0,
               reasoning_tokens: int = 0) -> dict[str, Any]:
    """Groq's `usage` object; `prompt_tokens_details.cached_tokens` counts the prompt served from its cache,
    `completion_tokens_details.reasoning_tokens` the answer's reasoning."""
    return {
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "queue_time": round(timing.queue_time, 6),
        "prompt_tokens": prompt_tokens,
        "prompt_time": round(timing.prompt_time, 6),
        "completion_tokens": completion_tokens,
        "completion_time": round(timing.completion_time, 6),
        "total_tokens": prompt_tokens + completion_tokens,
        "total_time": round(timing.total_time, 6),
    }


@dataclass(frozen=True)
class Answer:
    """One completed reply, ready to be written as a body or as a stream."""

    completion_id: str
    request_id: str  # x_groq.id
    created: int
    model: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    timing: Timing
    cached_tokens: int = 0  # of prompt_tokens, served from the prompt cache
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    reasoning_tokens: int = 0
    service_tier: str = "on_demand"

    @property
    def usage(self) -> dict[str, Any]:
        return usage_body(self.prompt_tokens, self.completion_tokens, self.timing, self.cached_tokens,
                          self.reasoning_tokens)


def _tool_calls(answer: Answer, indexed: bool = False) -> list[dict[str, Any]]:
    return [{**({"index": i} if indexed else {}), "id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}
            for i, call in enumerate(answer.tool_calls)]


def completion_body(answer: Answer) -> dict[str, Any]:
    """A non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text if not answer.tool_calls else None}
    if answer.reasoning is not None:
        message["reasoning"] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = _tool_calls(answer)
    return {
        "id": answer.completion_id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": answer.finish_reason,
        }],
        "usage": answer.usage,
        "usage_breakdown": None,
        "system_fingerprint": "fp_medops_local",
        "x_groq": {"id": answer.request_id},
        "service_tier": answer.service_tier,
    }


def stream_chunks(answer: Answer, words_per_chunk: int = 4) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed reply.

    The first carries the role and `x_groq.id`; then the reasoning, the content in
    pieces of a few words, and each tool call whole (as Groq streams them); the last
    an empty delta, the finish reason and `x_groq.usage`.
    """
    def chunk(delta: dict[str, Any], finish: str | None, x_groq: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": answer.completion_id,
            "object": "chat.completion.chunk",
            "created": answer.created,
            "model": answer.model,
            "system_fingerprint": "fp_medops_local",
            "service_tier": answer.service_tier,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if x_groq is not None:
            body["x_groq"] = x_groq
        return body

    yield chunk({"role": "assistant", "content": ""}, None, {"id": answer.request_id})
    if answer.reasoning:
        yield chunk({"reasoning": answer.reasoning}, None)
    if answer.tool_calls:
        for call in _tool_calls(answer, indexed=True):
            yield chunk({"tool_calls": [call]}, None)
    else:
        words = answer.text.split(" ")
        for start in range(0, len(words), words_per_chunk):
            piece = " ".join(words[start:start + words_per_chunk])
            yield chunk({"content": piece if start == 0 else " " + piece}, None)
    yield chunk({}, answer.finish_reason, {"id": answer.request_id, "usage": answer.usage})


def error_body(message: str, error_type: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """Groq's error object: `{"error": {"message", "type", "code"?, "param"?}}`."""
    error: dict[str, Any] = {"message": message, "type": error_type}
    if param is not None:
        error["param"] = param
    if code is not None:
        error["code"] = code
    return {"error": error}


_DIMENSION_TEXT = {"rpm": "requests per minute (RPM)", "rpd": "requests per day (RPD)",
                   "tpm": "tokens per minute (TPM)", "tpd": "tokens per day (TPD)"}


def rate_limit_body(model: str, dimension: str, limit: int, used: int, requested: int,
                    retry_in: str) -> dict[str, Any]:
    """Groq's 429 body naming the window that refused, its figures and the wait."""
    message = (f"Rate limit reached for model `{model}` in organization `{LOCAL_ORGANIZATION}` service tier "
               f"`on_demand` on {_DIMENSION_TEXT[dimension]}: Limit {limit}, Used {used}, Requested {requested}. "
               f"Please try again in {retry_in}. {RATE_LIMIT_DOCS}")
    error_type = "requests" if dimension in ("rpm", "rpd") else "tokens"
    return error_body(message, error_type, "rate_limit_exceeded")


def too_large_body(model: str, limit: int, requested: int) -> dict[str, Any]:
    """Groq's 413 body: one request asks more tokens than the minute's limit."""
    message = (f"Request too large for model `{model}` in organization `{LOCAL_ORGANIZATION}` service tier "
               f"`on_demand` on tokens per minute (TPM): Limit {limit}, Requested {requested}, please reduce "
               f"your message size and try again. {RATE_LIMIT_DOCS}")
    return error_body(message, "tokens", "rate_limit_exceeded")


def models_body(models: Mapping[str, ModelLimits], created: int, owned_by: str) -> dict[str, Any]:
    """`GET /openai/v1/models`: Groq's model list with context windows; `owned_by` says who serves them."""
    return {
        "object": "list",
        "data": [{
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": owned_by,
            "active": True,
            "context_window": limits.context_window,
            "public_apps": None,
            "max_completion_tokens": limits.context_window,
        } for name, limits in sorted(models.items())],
    }
