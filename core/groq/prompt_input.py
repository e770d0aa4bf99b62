"""Prompts typed by people or read from JSONL files, checked before they are queued.

Each problem is reported with what to do, and for a file with its line number;
messages name sizes and line numbers, never the prompt's text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.core.errors import ConfigError, MedopsError
from medops.core.groq.requests import DEFAULT_MAX_COMPLETION_TOKENS, InvalidRequest, Priority, PromptRequest
from medops.core.groq.token_estimate import estimate_prompt_tokens
from medops.core.settings.config import Settings

FILE_FIELDS = frozenset({"prompt", "agent", "priority", "model", "deadline", "max_completion_tokens"})
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PROBLEMS_SHOWN = 20  # a file of thousands of bad lines still gives a readable error


class PromptFileError(InvalidRequest):
    """A prompts file cannot be read, or one of its lines is not a valid prompt."""


def check_request(request: PromptRequest, settings: Settings) -> None:
    """Refuse an empty prompt, an unknown model, or a prompt too long for the model's context."""
    if not request.prompt.strip():
        raise InvalidRequest("the prompt is empty; give the text to send")
    model = request.model or settings.default_model
    try:
        limits = settings.model_limits(model)
    except ConfigError as unknown:
        raise InvalidRequest(str(unknown)) from None
    needed = estimate_prompt_tokens(request.prompt) + request.max_completion_tokens
    if needed > limits.context_window:
        raise InvalidRequest(
            f"the prompt is about {estimate_prompt_tokens(request.prompt):,} tokens; with max_completion_tokens "
            f"{request.max_completion_tokens:,} it exceeds {model}'s context window of {limits.context_window:,} "
            "tokens; shorten the prompt, lower max_completion_tokens or pick a model with a larger context")


@dataclass(frozen=True)
class PromptLine:
    """One prompt from a file and the line it came from."""

    line: int
    request: PromptRequest


def load_prompt_file(path: Path, settings: Settings) -> list[PromptLine]:
    """Every prompt in a JSONL file (blank lines skipped), all checked before any is sent."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PromptFileError(f"{path} is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit; split it")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptFileError(f"prompts file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise PromptFileError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSONL") from None
    except OSError as exc:
        raise PromptFileError(f"prompts file {path} cannot be read ({exc.strerror})") from None
    prompts: list[PromptLine] = []
    problems: list[str] = []
    lines = [(number, raw) for number, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    for number, raw in lines:
        try:
            prompts.append(PromptLine(number, parse_prompt_line(raw, number, path, settings)))
        except MedopsError as exc:  # gather them all: fixing a file one line per run wastes on-call time
            problems.append(str(exc))
    if len(problems) == 1:
        raise PromptFileError(f"{problems[0]}; nothing was sent")
    if problems:
        shown = "\n  ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise PromptFileError(f"{len(problems)} of {len(lines)} lines in {path} are not valid prompts; "
                              f"nothing was sent:\n  {shown}{more}")
    if not prompts:
        raise PromptFileError(f"{path} holds no prompts; write one JSON object a line, e.g. "
                              '{"prompt": "...", "agent": "triage", "priority": "high"}')
    return prompts


def parse_prompt_line(raw: str, number: int, path: Path, settings: Settings) -> PromptRequest:
    """One JSONL line as a checked PromptRequest; errors name the file and line."""
    where = f"{path} line {number}"
    try:
        fields: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PromptFileError(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); "
                              "each line must be one JSON object") from None
    if not isinstance(fields, dict):
        raise PromptFileError(f"{where} is a JSON {type(fields).__name__}, not an object with prompt and agent")
    unknown = set(fields) - FILE_FIELDS
    if unknown:
        raise PromptFileError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}; "
                              f"allowed: {', '.join(sorted(FILE_FIELDS))}")
    for name in ("prompt", "agent"):
        if not isinstance(fields.get(name), str):
            raise PromptFileError(f"{where} needs \"{name}\" as text")
    deadline = fields.get("deadline")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                 or not math.isfinite(deadline)):
        raise PromptFileError(f"{where}: deadline must be a number of seconds")
    try:
        request = PromptRequest(
            prompt=fields["prompt"], agent=fields["agent"],
            priority=Priority.parse(fields.get("priority", "normal")),
            model=fields.get("model"),
            max_completion_tokens=fields.get("max_completion_tokens", DEFAULT_MAX_COMPLETION_TOKENS),
            deadline=deadline,
        )
        check_request(request, settings)
    except InvalidRequest as bad:
        raise PromptFileError(f"{where}: {bad}") from None
    return request
