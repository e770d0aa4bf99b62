"""Groq's answer read into a `Completion`: a whole body, or a stream's chunks put together.

Pure functions over the JSON Groq sends (read raw, so fields the SDK does not
know yet pass through to whoever forwards the body). When an answer carries no
usage, its whole reservation is counted: the quota must never count less than
the server did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from medops.core.groq.chat import ToolCall
from medops.core.groq.rate_headers import RateLimitHeaders
from medops.core.groq.requests import Completion, PromptRequest


def completion_from_body(body: Mapping[str, Any], request: PromptRequest, model: str,
                         headers: RateLimitHeaders) -> Completion:
    """A non-streamed `chat.completion` body as a Completion."""
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    x_groq = body.get("x_groq")
    return _completion(
        text=_text(message.get("content")), model=_text(body.get("model")) or model,
        usage=body.get("usage"), request_id=x_groq.get("id") if isinstance(x_groq, Mapping) else None,
        headers=headers, request=request, finish_reason=_text(choice.get("finish_reason")) or "stop",
        tool_calls=tuple(_tool_call(call) for call in message.get("tool_calls") or () if isinstance(call, Mapping)),
        reasoning=message.get("reasoning") if isinstance(message.get("reasoning"), str) else None,
        tier=body.get("service_tier"), body=body)


@dataclass
class StreamAssembly:
    """A streamed answer put together chunk by chunk, as Groq's non-streamed body would have it."""

    model: str
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)  # by tool call index
    finish_reason: str | None = None
    usage: Any = None
    request_id: str | None = None
    completion_id: str = ""
    created: int = 0
    tier: Any = None

    def add(self, chunk: Mapping[str, Any]) -> str | None:
        """Take one chunk; the content piece it carried, if any."""
        self.model = _text(chunk.get("model")) or self.model
        self.completion_id = _text(chunk.get("id")) or self.completion_id
        created = chunk.get("created")
        self.created = created if isinstance(created, int) else self.created
        self.tier = chunk.get("service_tier", self.tier)
        x_groq = chunk.get("x_groq")
        if isinstance(x_groq, Mapping):
            self.request_id = x_groq.get("id") or self.request_id
            self.usage = x_groq.get("usage") or self.usage
        self.usage = chunk.get("usage") or self.usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            return None
        choice = choices[0]
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        delta = choice.get("delta")
        if not isinstance(delta, Mapping):
            return None
        if isinstance(delta.get("reasoning"), str):
            self.reasoning.append(delta["reasoning"])
        for call in delta.get("tool_calls") or ():
            if isinstance(call, Mapping):
                self._add_call(call)
        piece = delta.get("content")
        if isinstance(piece, str) and piece:
            self.text.append(piece)
            return piece
        return None

    def _add_call(self, piece: Mapping[str, Any]) -> None:
        """Tool calls come whole (Groq) or as pieces by index (OpenAI's way): arguments are concatenated."""
        index = piece.get("index", len(self.calls))
        call = self.calls.setdefault(index if isinstance(index, int) else len(self.calls),
                                     {"id": "", "name": "", "arguments": ""})
        call["id"] = piece.get("id") or call["id"]
        function = piece.get("function")
        if isinstance(function, Mapping):
            call["name"] = function.get("name") or call["name"]
            call["arguments"] += _text(function.get("arguments"))

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def completion(self, request: PromptRequest, headers: RateLimitHeaders) -> Completion:
        """The whole answer, with a body shaped as Groq's non-streamed one."""
        calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(self.calls.items()))
        reasoning = "".join(self.reasoning) if self.reasoning else None
        text = "".join(self.text)
        finish = self.finish_reason or "stop"
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
        if reasoning is not None:
            message["reasoning"] = reasoning
        body = {"id": self.completion_id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": self.usage, "x_groq": {"id": self.request_id}, "service_tier": self.tier}
        return _completion(text=text, model=self.model, usage=self.usage, request_id=self.request_id,
                           headers=headers, request=request, finish_reason=finish, tool_calls=calls,
                           reasoning=reasoning, tier=self.tier, body=body)


def _completion(*, text: str, model: str, usage: Any, request_id: Any, headers: RateLimitHeaders,
                request: PromptRequest, finish_reason: str, tool_calls: tuple[ToolCall, ...],
                reasoning: str | None, tier: Any, body: Mapping[str, Any]) -> Completion:
    usage = usage if isinstance(usage, Mapping) else {}
    prompt_tokens, completion_tokens = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    known = prompt_tokens is not None and completion_tokens is not None
    return Completion(
        text=text, model=model,
        prompt_tokens=prompt_tokens if known and prompt_tokens is not None else request.prompt_estimate,
        completion_tokens=completion_tokens if known and completion_tokens is not None
        else request.max_completion_tokens,
        queue_time=_seconds(usage.get("queue_time")), total_time=_seconds(usage.get("total_time")),
        request_id=request_id if isinstance(request_id, str) else None, headers=headers,
        cached_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
        finish_reason=finish_reason, tool_calls=tool_calls, reasoning=reasoning,
        reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        service_tier=tier if isinstance(tier, str) and tier else "on_demand",
        body=MappingProxyType(dict(body)))


def _tool_call(call: Mapping[str, Any]) -> ToolCall:
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    return ToolCall(_text(call.get("id")), _text(function.get("name")), _text(function.get("arguments")))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(usage: Mapping[str, Any], name: str) -> int | None:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _detail(usage: Mapping[str, Any], section: str, name: str) -> int:
    details = usage.get(section)
    value = details.get(name) if isinstance(details, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
