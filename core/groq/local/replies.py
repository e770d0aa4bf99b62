"""What the local endpoint answers to a chat request: text, a JSON answer or a tool call, decided by rule.

Deterministic, marked as the local endpoint's and free of medical content:
- `tool_choice` naming a function calls it; `required` calls the first function
  tool; `auto` (the default when tools are given) calls the first function tool
  while the conversation ends with a user message, and answers once it ends with
  a tool result; `none` never calls. One call per answer, whatever
  `parallel_tool_calls` says. Arguments fit the tool's `parameters` schema.
- `response_format` `json_object` answers a JSON object, `json_schema` an
  instance of the schema; otherwise the marked test text.
- A reasoning model answers a `reasoning` field when asked (`reasoning_format`
  `parsed`, or `include_reasoning` true), a `<think>` block in the content for
  `raw`, and none otherwise.
An answer longer than `max_completion_tokens` is cut there with finish reason `length`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from medops.core.groq.chat import Chat, ToolCall
from medops.core.groq.local.instances import instance_for
from medops.core.groq.wire import count_tokens, local_reply, truncate_to_tokens

REASONING_TEXT = ("[medops local endpoint] No reasoning was done: this is the local endpoint's test reply, "
                  "not a language model's.")


@dataclass(frozen=True)
class Reply:
    """One answer's message parts and why it ended."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    reasoning: str | None
    finish_reason: str

    @property
    def completion_tokens(self) -> int:
        """Tokens the endpoint charges for the answer: its text, tool calls and reasoning."""
        return (count_tokens(self.content or "") + count_tokens(self.reasoning or "")
                + sum(count_tokens(call.name + call.arguments) for call in self.tool_calls))

    @property
    def reasoning_tokens(self) -> int:
        return count_tokens(self.reasoning or "")


def reply_to(model: str, chat: Chat, max_tokens: int, reasoning_model: bool) -> Reply:
    """The endpoint's answer to `chat` by the rules in the module docstring."""
    reasoning = _reasoning(chat.params) if reasoning_model else None
    tool = _tool_to_call(chat)
    if tool is not None:
        function = tool.get("function") or {}
        name = str(function.get("name", ""))
        arguments = orjson.dumps(instance_for(function.get("parameters") or {"type": "object"})).decode()
        call_id = "call_" + hashlib.sha256(f"{name}:{len(chat.messages)}".encode()).hexdigest()[:24]
        return Reply(None, (ToolCall(call_id, name, arguments),), reasoning, "tool_calls")
    text = _content(model, chat)
    if chat.params.get("reasoning_format") == "raw" and reasoning_model:
        text = f"<think>{REASONING_TEXT}</think>{text}"
    text, cut = truncate_to_tokens(text, max(1, max_tokens - count_tokens(reasoning or "")))
    return Reply(text, (), reasoning, "length" if cut else "stop")


def _reasoning(params: Mapping[str, Any]) -> str | None:
    asked = params.get("reasoning_format") == "parsed" or params.get("include_reasoning") is True
    return REASONING_TEXT if asked else None


def _tool_to_call(chat: Chat) -> Mapping[str, Any] | None:
    functions = [t for t in chat.tools if t.get("type") == "function" and isinstance(t.get("function"), Mapping)]
    choice = chat.params.get("tool_choice", "auto" if functions else "none")
    if not functions or choice == "none":
        return None
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in functions if t["function"].get("name") == name), None)
    if choice == "required":
        return functions[0]
    last = chat.messages[-1].get("role") if chat.messages else None
    return functions[0] if last == "user" else None


def _content(model: str, chat: Chat) -> str:
    shape = chat.params.get("response_format")
    kind = shape.get("type") if isinstance(shape, Mapping) else "text"
    text = local_reply(model, list(chat.messages))
    if kind == "json_object":
        return orjson.dumps({"medops_local_endpoint": text}).decode()
    if kind == "json_schema":
        assert isinstance(shape, Mapping)
        return orjson.dumps(instance_for(shape["json_schema"].get("schema"))).decode()
    return text
