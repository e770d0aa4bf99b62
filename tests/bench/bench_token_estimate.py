"""The token estimate's margin over what a model counts, for plain prompts beside tool-heavy requests.

Each request of a kind is counted three ways in the same run:
- medops' estimate (what the quota reserves before Groq answers, `request.prompt_estimate`);
- the local endpoint's own count (`count_prompt_tokens`, what the tests judge by);
- Groq's models' own tokenizers (quicktok's bundled vocabularies: llama3 for Llama 3.x, o200k_harmony
  for gpt-oss, qwen3 for Qwen) over the request rendered as a Llama 3.1-style chat template: each
  message's header and end-of-turn (5 tokens), its texts, and tool definitions and a response schema as
  JSON in the system turn with a short instruction. That is what a model reads; Groq's own template
  adds a little more, so this count errs low and the margin shown errs high by those few tokens.

Margin = estimate / count: above 1 the reservation covers the count. Synthetic text only.
Run with `make bench`.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from medops.core.groq.chat import definitions_json, message_texts
from medops.core.groq.requests import PromptRequest
from medops.core.groq.wire import count_prompt_tokens

quicktok = pytest.importorskip("quicktok", reason="quicktok-v1 (a dev dependency) gives the models' tokenizers")

REQUESTS = 200
HEADER_TOKENS = 5  # <|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>
TOOLS_INSTRUCTION = ("You have access to the following functions. To call a function, respond with JSON for a "
                     "function call with its proper arguments that best answers the given prompt.")
VOCABULARY = ("patient reports chest pain shortness of breath since yesterday evening no fever history of "
              "hypertension takes lisinopril 10 mg daily allergic to penicillin blood pressure 150/95 heart rate 104 "
              "oxygen saturation 94% on room air ECG shows sinus tachycardia troponin pending follow up in two days")
WORDS = VOCABULARY.split(" ")


def note(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def tool(rng: random.Random, n: int) -> dict[str, Any]:
    properties = {f"field_{k}": {"type": rng.choice(["string", "integer", "number", "boolean"]),
                                 "description": note(rng, rng.randint(3, 12))} for k in range(rng.randint(2, 8))}
    return {"type": "function", "function": {"name": f"tool_{n}", "description": note(rng, rng.randint(5, 20)),
                                             "parameters": {"type": "object", "properties": properties,
                                                            "required": list(properties)[:2]}}}


def plain(rng: random.Random) -> PromptRequest:
    return PromptRequest(note(rng, rng.randint(5, 400)), agent="triage")


def conversation(rng: random.Random) -> PromptRequest:
    turns = [{"role": "system", "content": note(rng, 30)}]
    for _ in range(rng.randint(1, 6)):
        turns += [{"role": "user", "content": note(rng, rng.randint(5, 80))},
                  {"role": "assistant", "content": note(rng, rng.randint(5, 120))}]
    turns.append({"role": "user", "content": note(rng, 20)})
    return PromptRequest(agent="documentation", messages=turns)


def tool_heavy(rng: random.Random) -> PromptRequest:
    tools = [tool(rng, n) for n in range(rng.randint(5, 30))]
    turns: list[dict[str, Any]] = [{"role": "system", "content": note(rng, 20)},
                                   {"role": "user", "content": note(rng, 40)}]
    for n in range(rng.randint(1, 4)):
        arguments = json.dumps({f"field_{k}": note(rng, 3) for k in range(3)})
        call = {"id": f"call_{n}", "type": "function", "function": {"name": f"tool_{n}", "arguments": arguments}}
        turns += [{"role": "assistant", "content": None, "tool_calls": [call]},
                  {"role": "tool", "tool_call_id": f"call_{n}",
                   "content": json.dumps({"result": note(rng, rng.randint(5, 60)), "code": f"R0{n}.9"})}]
    return PromptRequest(agent="medication", messages=turns, params={"tools": tools})


def schema_answer(rng: random.Random) -> PromptRequest:
    schema = tool(rng, 0)["function"]["parameters"]
    return PromptRequest(note(rng, rng.randint(10, 200)), agent="triage", system=note(rng, 20),
                         params={"response_format": {"type": "json_schema",
                                                     "json_schema": {"name": "answer", "schema": schema}}})


KINDS: dict[str, Callable[[random.Random], PromptRequest]] = {
    "plain prompt": plain, "conversation": conversation, "tool-heavy (5-30 tools, calls, results)": tool_heavy,
    "json_schema answer": schema_answer}
ENCODINGS = {"llama3": "Llama 3.x", "o200k_harmony": "gpt-oss", "qwen3": "Qwen 3"}


def rendered(request: PromptRequest) -> Iterator[str]:
    """The texts a model reads for the request, in a Llama 3.1-style template (headers counted apart)."""
    definitions = list(definitions_json(request.chat.params))
    if definitions:
        yield TOOLS_INSTRUCTION
        yield from definitions
    for message in request.chat.messages:
        yield message["role"]
        yield from message_texts(message)


def model_count(encoding: Any, request: PromptRequest) -> int:
    return HEADER_TOKENS * (len(request.chat.messages) + 1) + sum(
        len(encoding.encode(text)) for text in rendered(request))


def test_bench_token_estimate_margin_over_the_models_tokenizers() -> None:
    encodings = {name: quicktok.get_encoding(name) for name in ENCODINGS}
    rng = random.Random(7)
    print(f"\nToken estimate margin (estimate / count; {REQUESTS} synthetic requests a kind; >1.00 covers it)")
    header = f"{'kind':<40} {'vs':<22} {'p50':>6} {'min':>6} {'max':>6}"
    print(header)
    print("-" * len(header))
    for kind, make in KINDS.items():
        requests = [make(rng) for _ in range(REQUESTS)]
        peers: dict[str, list[float]] = {"local endpoint's count": [
            r.prompt_estimate / count_prompt_tokens(r.chat.messages, r.chat.params) for r in requests]}
        for name, family in ENCODINGS.items():
            peers[f"{family} tokenizer"] = [r.prompt_estimate / model_count(encodings[name], r) for r in requests]
        for peer, margins in peers.items():
            print(f"{kind:<40} {peer:<22} {statistics.median(margins):>6.2f} {min(margins):>6.2f} "
                  f"{max(margins):>6.2f}")
            assert min(margins) >= 1.0, f"{kind}: the estimate fell below the {peer}"
