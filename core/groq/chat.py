"""Groq's chat request as the core carries it: messages and the body's other fields, checked once.

`parse_chat` reads a request body as a client sends it (groq-python's
`completion_create_params`: messages, tools, tool_choice, response_format,
reasoning and tier fields, and fields Groq adds later, passed through after
the size checks) into a `Chat`, or refuses it with `ChatRefused`: what Groq
would answer with a 400, shaped like Groq's error, raised before any quota is
spent. The local endpoint refuses with the same checks, so the two agree.

Messages, tool arguments and results, images and schemas are patient data:
no message here quotes them; errors name fields and sizes only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson
from jsonschema import Draft202012Validator, SchemaError

from medops.core.errors import SchedulerError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
# Fields the core sets itself or handles apart from the pass-through ones.
OWN_FIELDS = frozenset({"model", "messages", "stream", "max_completion_tokens", "max_tokens"})
MAX_STOP = 4
MAX_TOOLS = 128
MAX_IMAGES = 5  # Groq's images per request
MAX_MESSAGES = 10_000
MAX_BODY_BYTES = 20 * 1024 * 1024  # Groq's cap for a request with image URLs
MAX_DEPTH = 64  # JSON nesting; a schema rarely needs a dozen
TOOL_NAME_CHARS = 64
SERVICE_TIERS = frozenset({"auto", "on_demand", "flex", "performance"})
REASONING_EFFORTS = frozenset({"none", "default", "low", "medium", "high"})
REASONING_FORMATS = frozenset({"hidden", "raw", "parsed"})
RESPONSE_TYPES = frozenset({"text", "json_object", "json_schema"})


class InvalidRequest(SchedulerError):
    """A prompt request is malformed (empty agent, non-positive token budget...)."""


class ChatRefused(InvalidRequest):
    """A chat request Groq would refuse (HTTP `status`, 400 mostly), refused here before any quota is spent.

    `body` is Groq's error object for it; the message names fields and sizes, never their contents."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    @property
    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": str(self), "type": "invalid_request_error", "code": self.code}
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an answer: Groq's `id`, the function's name and its arguments (JSON text)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Chat:
    """What Groq is asked, minus model, stream and token cap (the scheduler's): messages and other fields.

    Both hold JSON values as the client sent them (copied, so a caller changing its lists later changes
    nothing queued); `params` keeps every field but `OWN_FIELDS`, in order, for the body sent to Groq."""

    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]

    @property
    def tools(self) -> Sequence[Mapping[str, Any]]:
        tools = self.params.get("tools")
        return tools if isinstance(tools, list) else ()

    @property
    def tier(self) -> str:
        """The service tier asked for ("on_demand" when none was)."""
        tier = self.params.get("service_tier")
        return tier if isinstance(tier, str) and tier != "auto" else "on_demand"

    def images(self) -> int:
        return sum(1 for part in content_parts(self.messages) if part.get("type") == "image_url")

    def body(self, model: str, max_completion_tokens: int, stream: bool = False) -> dict[str, Any]:
        """The JSON body sent to Groq."""
        body: dict[str, Any] = {"model": model, "messages": list(self.messages), **self.params,
                                "max_completion_tokens": max_completion_tokens}
        if stream:
            body["stream"] = True
        return body


def prompt_chat(prompt: str, system: str | None = None) -> Chat:
    """A one-line prompt (and an optional system prompt) as a chat."""
    messages: list[Mapping[str, Any]] = []
    if system:
        messages.append(MappingProxyType({"role": "system", "content": system}))
    messages.append(MappingProxyType({"role": "user", "content": prompt}))
    return Chat(tuple(messages), MappingProxyType({}))


def parse_chat(messages: object, params: Mapping[str, Any]) -> Chat:
    """`messages` and the other fields checked as Groq checks them; `ChatRefused` says what Groq would.

    What depends on the model (images, reasoning fields) is `check_model_features`'s."""
    try:
        copied = orjson.loads(orjson.dumps({"messages": messages, "params": dict(params)}))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ChatRefused(f"the request holds a value JSON cannot carry ({_kind(exc)}); send JSON values "
                          "only (text, numbers, lists, objects)") from None
    check_depth(copied)
    messages, fields = copied["messages"], copied["params"]
    own = sorted(OWN_FIELDS & set(fields))
    if own:
        raise ChatRefused(f"'{own[0]}' is set by medops from the request itself, not among the other fields",
                          param=own[0])
    _check_messages(messages)
    _check_fields(fields)
    assert isinstance(messages, list)  # _check_messages refused anything else
    return Chat(tuple(messages), MappingProxyType(fields))


def check_model_features(chat: Chat, model: str, *, vision: bool, reasoning: bool) -> None:
    """Refuse images to a model without vision and reasoning fields to a model that does not reason."""
    if not vision and chat.images():
        raise ChatRefused(f"model `{model}` does not take images (image_url content); send them to a vision "
                          "model such as meta-llama/llama-4-scout-17b-16e-instruct", param="messages")
    asked = [name for name in ("reasoning_effort", "reasoning_format", "include_reasoning")
             if chat.params.get(name) is not None]
    if asked and not reasoning:
        raise ChatRefused(f"{asked[0]} is not supported with model `{model}`; use a reasoning model such as "
                          "openai/gpt-oss-20b or qwen/qwen3-32b, or leave it out", param=asked[0])


def check_depth(value: object, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` (walked without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise ChatRefused(f"the request is nested deeper than {limit} levels; flatten it")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _kind(exc: BaseException) -> str:
    text = str(exc)
    return "a number too large" if "Integer" in text else "a non-JSON type"


def _check_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise ChatRefused("'messages' : minimum number of items is 1", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise ChatRefused(f"'messages' : maximum number of items is {MAX_MESSAGES}", param="messages")
    images = 0
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ChatRefused(f"'{where}' : discriminator property 'role' has invalid value; use one of "
                              f"{', '.join(sorted(ROLES))}", param="messages")
        role = message["role"]
        content = message.get("content")
        if role == "tool" and not (isinstance(message.get("tool_call_id"), str) and message["tool_call_id"]):
            raise ChatRefused(f"'{where}' : for 'role:tool' the following must be satisfied"
                              f"[('{where}.tool_call_id' : property 'tool_call_id' is missing)]", param="messages")
        if role == "assistant":
            _check_tool_calls(message.get("tool_calls"), where)
            if content is None and not message.get("tool_calls"):
                raise ChatRefused(f"'{where}' : an assistant message needs 'content' or 'tool_calls'",
                                  param="messages")
        elif content is None:
            raise ChatRefused(f"'{where}' : for 'role:{role}' the following must be satisfied"
                              f"[('{where}.content' : property 'content' is missing)]", param="messages")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise ChatRefused(f"'{where}.content' : value must be a string or an array of content parts",
                              param="messages")
        for number, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind == "image_url" and role == "user":
                url = part.get("image_url", {}).get("url") if isinstance(part.get("image_url"), dict) else None
                if not isinstance(url, str) or not url:
                    raise ChatRefused(f"'{where}.content.{number}.image_url' : property 'url' is missing",
                                      param="messages")
                images += 1
                continue
            raise ChatRefused(f"'{where}.content.{number}' : a {role} message's content parts are "
                              f"{'text or image_url' if role == 'user' else 'text'} objects", param="messages")
    if images > MAX_IMAGES:
        raise ChatRefused(f"too many images in this request: {images}; at most {MAX_IMAGES}", param="messages")


def _check_tool_calls(calls: object, where: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise ChatRefused(f"'{where}.tool_calls' : value must be an array", param="messages")
    for number, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not (isinstance(call, dict) and isinstance(call.get("id"), str) and isinstance(function, dict)
                and isinstance(function.get("name"), str) and isinstance(function.get("arguments"), str)):
            raise ChatRefused(f"'{where}.tool_calls.{number}' : needs 'id', 'type' function and 'function' with "
                              "'name' and 'arguments' (JSON text)", param="messages")


def _check_fields(fields: dict[str, Any]) -> None:
    n = fields.get("n")
    if n is not None and n != 1:
        raise ChatRefused("'n' : number must be at most 1", param="n")
    stop = fields.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ChatRefused("'stop' : value must be a string or an array of strings", param="stop")
        if len(stop) > MAX_STOP:
            raise ChatRefused(f"'stop' : maximum number of items is {MAX_STOP}", param="stop")
    _check_number(fields, "temperature", 0.0, 2.0)
    _check_number(fields, "top_p", 0.0, 1.0)
    _check_number(fields, "frequency_penalty", -2.0, 2.0)
    _check_number(fields, "presence_penalty", -2.0, 2.0)
    seed = fields.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ChatRefused("'seed' : value must be an integer", param="seed")
    for flag in ("parallel_tool_calls", "include_reasoning", "logprobs"):
        if fields.get(flag) is not None and not isinstance(fields[flag], bool):
            raise ChatRefused(f"'{flag}' : value must be a boolean", param=flag)
    if fields.get("user") is not None and not isinstance(fields["user"], str):
        raise ChatRefused("'user' : value must be a string", param="user")
    tier = fields.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise ChatRefused(f"'service_tier' : value must be one of {', '.join(sorted(SERVICE_TIERS))}",
                          param="service_tier")
    _check_reasoning(fields)
    names = _check_tools(fields.get("tools"))
    _check_tool_choice(fields.get("tool_choice"), names)
    _check_response_format(fields.get("response_format"))


def _check_number(fields: Mapping[str, Any], name: str, low: float, high: float) -> None:
    value = fields.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ChatRefused(f"'{name}' : value must be a number from {low:g} to {high:g}", param=name)


def _check_reasoning(fields: Mapping[str, Any]) -> None:
    effort, shape = fields.get("reasoning_effort"), fields.get("reasoning_format")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise ChatRefused(f"'reasoning_effort' : value must be one of {', '.join(sorted(REASONING_EFFORTS))}",
                          param="reasoning_effort")
    if shape is not None and shape not in REASONING_FORMATS:
        raise ChatRefused(f"'reasoning_format' : value must be one of {', '.join(sorted(REASONING_FORMATS))}",
                          param="reasoning_format")
    if shape is not None and fields.get("include_reasoning") is not None:
        raise ChatRefused("reasoning_format and include_reasoning cannot both be set; use one",
                          param="reasoning_format")


def _check_tools(tools: object) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise ChatRefused("'tools' : value must be an array", param="tools")
    if len(tools) > MAX_TOOLS:
        raise ChatRefused(f"'tools' : maximum number of items is {MAX_TOOLS}", param="tools")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise ChatRefused(f"'tools.{index}' : property 'type' is missing", param="tools")
        if tool["type"] != "function":
            continue  # Groq's built-in tools (browser_search, code_interpreter...) pass through as given
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name or len(name) > TOOL_NAME_CHARS or \
                not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in name):
            raise ChatRefused(f"'tools.{index}.function.name' : must be 1 to {TOOL_NAME_CHARS} letters, digits, "
                              "'_' or '-'", param="tools")
        assert isinstance(function, dict)
        parameters = function.get("parameters")
        if parameters is not None:
            _check_schema(parameters, f"tools.{index}.function.parameters")
        names.add(name)
    return names


def _check_tool_choice(choice: object, names: set[str]) -> None:
    if choice is None or choice in ("none", "auto"):
        return
    if choice == "required":
        if not names:
            raise ChatRefused("tool_choice is 'required' but no tools were given", param="tool_choice")
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise ChatRefused("'tool_choice' : must be 'none', 'auto', 'required' or "
                          "{\"type\": \"function\", \"function\": {\"name\": ...}}", param="tool_choice")
    if name not in names:
        raise ChatRefused("tool_choice names a function that is not among the tools", param="tool_choice")


def _check_response_format(shape: object) -> None:
    if shape is None:
        return
    kind = shape.get("type") if isinstance(shape, dict) else None
    if kind not in RESPONSE_TYPES:
        raise ChatRefused(f"'response_format.type' : value must be one of {', '.join(sorted(RESPONSE_TYPES))}",
                          param="response_format")
    if kind != "json_schema":
        return
    assert isinstance(shape, dict)
    spec = shape.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name", "response"), str):
        raise ChatRefused("'response_format.json_schema' : must be an object with 'name' and 'schema'",
                          param="response_format")
    if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
        raise ChatRefused("'response_format.json_schema.strict' : value must be a boolean", param="response_format")
    _check_schema(spec.get("schema"), "response_format.json_schema.schema")


def _check_schema(schema: object, where: str) -> None:
    """A JSON schema whose root is an object schema, valid as a schema."""
    if not isinstance(schema, dict):
        raise ChatRefused(f"'{where}' : the schema must be a JSON object", param=where.split(".")[0])
    if schema.get("type", "object") != "object":
        raise ChatRefused(f"'{where}' : the schema's root must be of type 'object'", param=where.split(".")[0])
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as bad:
        path = ".".join(str(p) for p in bad.path) or "root"
        raise ChatRefused(f"'{where}' : not a valid JSON schema (at {path}: keyword '{bad.validator}')",
                          param=where.split(".")[0]) from None


def content_parts(messages: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every content part (text and image objects) of every message."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            yield from (part for part in content if isinstance(part, Mapping))


def message_texts(message: Mapping[str, Any]) -> Iterator[str]:
    """Every piece of text a message carries that a model reads: content, reasoning, tool calls, ids, name."""
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        yield from (part["text"] for part in content if isinstance(part, Mapping)
                    and isinstance(part.get("text"), str))
    for name in ("reasoning", "tool_call_id", "name"):
        if isinstance(message.get(name), str):
            yield message[name]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                yield str(function.get("name", ""))
                yield str(function.get("arguments", ""))


def definitions_json(params: Mapping[str, Any]) -> Iterator[str]:
    """The JSON text of what a model also reads besides messages: tool definitions and a response schema."""
    for tool in params.get("tools") or ():
        yield orjson.dumps(tool).decode()
    shape = params.get("response_format")
    if isinstance(shape, Mapping) and isinstance(shape.get("json_schema"), Mapping):
        yield orjson.dumps(shape["json_schema"]).decode()
