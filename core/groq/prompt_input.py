"""Prompts typed by people or read from JSONL files, checked before they are queued.

Each problem is reported with what to do, and for a file with its line number;
messages name sizes and line numbers, never the prompt's text.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from medops.core.errors import ConfigError, MedopsError
from medops.core.groq.chat import check_model_features
from medops.core.groq.requests import DEFAULT_MAX_COMPLETION_TOKENS, InvalidRequest, Priority, PromptRequest
from medops.core.settings.config import Settings

# What a line schedules by, the one-line prompt's fields, and Groq's chat fields (passed on as Groq's API has them).
FILE_FIELDS = frozenset({"prompt", "system", "agent", "priority", "model", "deadline", "max_completion_tokens"})
CHAT_FIELDS = frozenset({"messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "temperature",
                         "top_p", "seed", "stop", "service_tier", "reasoning_effort", "reasoning_format",
                         "include_reasoning", "user", "frequency_penalty", "presence_penalty", "n", "logprobs"})
SHOWN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")  # a field name echoed in an error; any other is not shown
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PROBLEMS_SHOWN = 20  # a file of thousands of bad lines still gives a readable error


class PromptFileError(InvalidRequest):
    """A prompts file cannot be read, or one of its lines is not a valid prompt."""


def check_request(request: PromptRequest, settings: Settings) -> None:
    """Refuse an empty prompt, an unknown model, what the model cannot take (images, reasoning fields),
    or a request too long for the model's context."""
    if request.prompt is not None and not request.prompt.strip():
        raise InvalidRequest("the prompt is empty; give the text to send")
    model = request.model or settings.default_model
    try:
        limits = settings.model_limits(model)
    except ConfigError as unknown:
        raise InvalidRequest(str(unknown)) from None
    check_model_features(request.chat, model, vision=limits.vision, reasoning=limits.reasoning)
    needed = request.prompt_estimate + request.max_completion_tokens
    if needed > limits.context_window:
        raise InvalidRequest(
            f"the prompt is about {request.prompt_estimate:,} tokens; with max_completion_tokens "
            f"{request.max_completion_tokens:,} it exceeds {model}'s context window of {limits.context_window:,} "
            "tokens; shorten the prompt, lower max_completion_tokens or pick a model with a larger context")


@dataclass(frozen=True)
class PromptLine:
    """One prompt from a file and the line it came from."""

    line: int
    request: PromptRequest


def load_prompt_file(path: Path, settings: Settings, agent: str = "oncall") -> list[PromptLine]:
    """Every prompt in a JSONL file (blank lines skipped), all checked before any is sent; `agent` serves
    a line that names none."""
    prompts: list[PromptLine] = []
    problems: list[str] = []
    lines = 0
    for number, raw in _read_lines(path):  # parsed as read: the raw text is not kept
        if not raw.strip():
            continue
        lines += 1
        try:
            prompts.append(PromptLine(number, parse_prompt_line(raw, number, path, settings, agent)))
        except MedopsError as exc:  # gather them all: fixing a file one line per run wastes on-call time
            problems.append(str(exc))
    if len(problems) == 1:
        raise PromptFileError(f"{problems[0]}; nothing was sent")
    if problems:
        shown = "\n  ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise PromptFileError(f"{len(problems)} of {lines} lines in {path} are not valid prompts; "
                              f"nothing was sent:\n  {shown}{more}")
    if not prompts:
        raise PromptFileError(f"{path} holds no prompts; write one JSON object a line, e.g. "
                              '{"prompt": "...", "agent": "triage", "priority": "high"}')
    return prompts


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered, read a line at a time and never past `MAX_FILE_BYTES`.

    The size is counted while reading, not taken from `stat` (0 for a device or a /proc file);
    a pipe or device is refused before a byte is read, and opening never blocks on a FIFO.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PromptFileError(f"prompts file {path} does not exist") from None
    except OSError as exc:
        raise PromptFileError(f"prompts file {path} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PromptFileError(f"{path} is not a regular file (a folder, pipe or device); give a JSONL file")
        os.set_blocking(fd, True)
        consumed = 0
        number = 0
        while True:
            try:
                raw = stream.readline(MAX_FILE_BYTES - consumed + 1)
            except OSError as exc:
                raise PromptFileError(f"prompts file {path} cannot be read ({exc.strerror})") from None
            if not raw:
                return
            number += 1
            if consumed + len(raw) > MAX_FILE_BYTES:
                raise PromptFileError(f"{path} is over the {MAX_FILE_BYTES:,}-byte limit (by line {number}); "
                                      "split it")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PromptFileError(f"{path} is not UTF-8 text (byte {consumed + exc.start}); save it as UTF-8 "
                                      "JSONL") from None
            consumed += len(raw)
            yield number, text.rstrip("\r\n")


MESSAGES_EXAMPLE = '"messages": [{"role": "user", "content": "..."}]'


def _json_kind(value: object) -> str:
    """What a JSON value is, in words, never what it holds: 'text', 'a number', 'an object'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (int, float)):
        return "a number"
    return "an object" if isinstance(value, dict) else "a list"


def _check_conversation(messages: object, where: str) -> None:
    """The shape of "messages", said in the file's terms (Groq's own wording, "minimum number of items is 1",
    does not say that a list is wanted); the messages themselves are checked as Groq would."""
    if not isinstance(messages, list):
        raise PromptFileError(f"{where}: \"messages\" must be a list of messages, not {_json_kind(messages)}; "
                              f"write e.g. {MESSAGES_EXAMPLE}, or use \"prompt\" for one text")
    if not messages:
        raise PromptFileError(f"{where}: \"messages\" is an empty list; give at least one message, e.g. "
                              f"{MESSAGES_EXAMPLE}")
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            raise PromptFileError(f"{where}: message {number} of \"messages\" is {_json_kind(message)}, not an "
                                  f"object with \"role\" and \"content\"; write e.g. {MESSAGES_EXAMPLE}")


def parse_prompt_line(raw: str, number: int, path: Path, settings: Settings, agent: str = "oncall") -> PromptRequest:
    """One JSONL line as a checked PromptRequest (`agent` when the line names none); errors name the file and
    line."""
    where = f"{path} line {number}"
    try:
        # orjson refuses numbers past 64 bits and nesting past 1,024 levels with an error, not a traceback.
        fields: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PromptFileError(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); "
                              "each line must be one JSON object") from None
    if not isinstance(fields, dict):
        raise PromptFileError(f"{where} is a JSON {type(fields).__name__}, not an object with a prompt")
    unknown = set(fields) - FILE_FIELDS - CHAT_FIELDS
    if unknown:
        shown = sorted(name if SHOWN_NAME.fullmatch(name) else "(a name not shown)" for name in unknown)
        raise PromptFileError(f"{where} has unknown field(s) {', '.join(shown)}; "
                              f"allowed: {', '.join(sorted(FILE_FIELDS | CHAT_FIELDS))}")
    if ("prompt" in fields) == ("messages" in fields):
        raise PromptFileError(f"{where} needs \"prompt\" (text) or \"messages\" (a conversation), one of them")
    if "messages" in fields and "system" in fields:
        raise PromptFileError(f"{where}: \"system\" goes with \"prompt\"; with \"messages\" make it the first "
                              "message (role system)")
    wrong = [name for name in ("agent", "prompt", "system") if not isinstance(fields.get(name, ""), str)]
    if wrong:
        raise PromptFileError(f"{where} needs \"{wrong[0]}\" as text")
    if "messages" in fields:
        _check_conversation(fields["messages"], where)
    deadline = fields.get("deadline")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                 or not math.isfinite(deadline)):
        raise PromptFileError(f"{where}: deadline must be a number of seconds")
    try:
        request = PromptRequest(
            prompt=fields.get("prompt"), agent=fields.get("agent", agent),
            priority=Priority.parse(fields.get("priority", "normal")),
            model=fields.get("model"),
            max_completion_tokens=fields.get("max_completion_tokens", DEFAULT_MAX_COMPLETION_TOKENS),
            deadline=deadline, system=fields.get("system"), messages=fields.get("messages"),
            params={name: value for name, value in fields.items() if name in CHAT_FIELDS and name != "messages"},
        )
        check_request(request, settings)
    except InvalidRequest as bad:
        raise PromptFileError(f"{where}: {bad}") from None
    return request
