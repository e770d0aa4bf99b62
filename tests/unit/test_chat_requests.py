"""Groq's whole chat request through the core (real groq SDK inside it) to the real local endpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from medops.console.cli import main
from medops.core.groq.chat import ChatRefused
from medops.core.groq.local.server import LocalEndpoint
from medops.core.groq.requests import Attempt, Priority, PromptRequest
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import DEFAULT_MODELS, Settings
from medops.core.settings.paths import Locations

MODEL = "llama-3.1-8b-instant"
VISION = "meta-llama/llama-4-scout-17b-16e-instruct"
REASONING = "openai/gpt-oss-20b"
LOOKUP = {"type": "function", "function": {
    "name": "lookup_icd10_code", "description": "Look up an ICD-10-CM code in the knowledge base.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z][0-9]{2}"}},
                   "required": ["code"], "additionalProperties": False}}}
INTERACTION = {"type": "function", "function": {
    "name": "check_interaction", "parameters": {
        "type": "object", "properties": {"drugs": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                                         "severity_at_least": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["drugs"]}}}
TRIAGE = {"type": "object", "properties": {
    "acuity": {"type": "string", "enum": ["resuscitation", "emergent", "urgent", "less_urgent", "non_urgent"]},
    "red_flags": {"type": "array", "items": {"type": "string"}},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["acuity", "red_flags", "confidence"], "additionalProperties": False}
SYSTEM = {"role": "system", "content": "You are a triage assistant. Answer in JSON."}
USER = {"role": "user", "content": "Synthetic note: chest pain for two hours."}


@pytest.fixture
async def endpoint() -> AsyncIterator[LocalEndpoint]:
    server = LocalEndpoint(DEFAULT_MODELS)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def core(endpoint: LocalEndpoint, locations: Locations, monkeypatch: pytest.MonkeyPatch,
               knowledge_ready: object) -> AsyncIterator[ResourceCore]:
    monkeypatch.setenv("GROQ_BASE_URL", endpoint.url)
    started = ResourceCore(Settings(batch_interval=0.0), locations)
    await started.start()
    yield started
    await started.stop()


def ask(**fields: Any) -> PromptRequest:
    return PromptRequest(agent="medication", priority=Priority.CRITICAL, **fields)


async def test_a_two_turn_conversation_calls_a_tool_then_answers_from_its_result(core: ResourceCore) -> None:
    messages: list[dict[str, Any]] = [SYSTEM, USER]
    first = await core.ask(ask(messages=messages, params={"tools": [LOOKUP, INTERACTION]}))
    assert first.completion.finish_reason == "tool_calls"
    (call,) = first.completion.tool_calls
    assert call.name == "lookup_icd10_code"
    arguments = json.loads(call.arguments)
    jsonschema.validate(arguments, LOOKUP["function"]["parameters"])
    messages.append(first.completion.message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"found": True})})
    second = await core.ask(ask(messages=messages, params={"tools": [LOOKUP, INTERACTION]}))
    assert second.completion.finish_reason == "stop" and not second.completion.tool_calls
    assert second.completion.text.startswith("[medops local endpoint]")
    assert second.completion.message == {"role": "assistant", "content": second.completion.text}


async def test_a_named_tool_choice_calls_that_tool_with_arguments_that_fit_its_schema(core: ResourceCore) -> None:
    choice = {"type": "function", "function": {"name": "check_interaction"}}
    result = await core.ask(ask(messages=[USER], params={"tools": [LOOKUP, INTERACTION], "tool_choice": choice}))
    (call,) = result.completion.tool_calls
    assert call.name == "check_interaction"
    jsonschema.validate(json.loads(call.arguments), INTERACTION["function"]["parameters"])


@pytest.mark.parametrize("schema", [
    TRIAGE,
    {"type": "object", "properties": {"codes": {"type": "array", "items": {"$ref": "#/$defs/code"}, "minItems": 1}},
     "required": ["codes"], "$defs": {"code": {"type": "object", "properties": {
         "code": {"type": "string", "pattern": "^[A-Z][0-9]{2}(\\.[0-9A-Z]{1,4})?$"},
         "kind": {"anyOf": [{"type": "null"}, {"const": "primary"}]}}, "required": ["code", "kind"]}}},
])
async def test_json_schema_answers_validate_against_the_schema(core: ResourceCore, schema: dict[str, Any]) -> None:
    shape = {"type": "json_schema", "json_schema": {"name": "triage", "schema": schema, "strict": True}}
    result = await core.ask(ask(messages=[SYSTEM, USER], params={"response_format": shape}))
    jsonschema.validate(json.loads(result.completion.text), schema)


async def test_json_object_mode_answers_one_json_object(core: ResourceCore) -> None:
    result = await core.ask(ask(prompt="Synthetic note.", params={"response_format": {"type": "json_object"}}))
    assert isinstance(json.loads(result.completion.text), dict)


async def test_a_streamed_tool_call_arrives_in_groq_chunks_and_whole(core: ResourceCore) -> None:
    chunks: list[dict[str, Any]] = []
    attempts: list[Attempt] = []

    async def on_chunk(data: bytes, attempt: Attempt) -> None:
        chunks.append(json.loads(data))
        attempts.append(attempt)

    result = await core.ask(PromptRequest.from_body(
        {"model": MODEL, "messages": [USER], "tools": [LOOKUP], "tool_choice": "required", "stream": True},
        agent="medication", on_chunk=on_chunk))
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert [p["function"]["name"] for p in pieces] == ["lookup_icd10_code"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls" and "usage" in chunks[-1]["x_groq"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert {a.number for a in attempts} == {1}
    (call,) = result.completion.tool_calls
    assert call.arguments == pieces[0]["function"]["arguments"] and call.id == pieces[0]["id"]
    assert result.completion.body["choices"][0]["message"]["tool_calls"][0]["id"] == call.id


async def test_a_vision_request_reserves_what_its_image_costs(core: ResourceCore, endpoint: LocalEndpoint) -> None:
    image = {"role": "user", "content": [
        {"type": "text", "text": "Synthetic scan: read the printed header."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
    request = PromptRequest(agent="documentation", model=VISION, messages=[image], max_completion_tokens=64)
    result = await core.ask(request)
    assert result.completion.prompt_tokens >= 1_000  # the image was counted
    assert request.prompt_estimate >= result.completion.prompt_tokens
    assert endpoint.stats.answered == 1


async def test_reasoning_comes_as_a_field_when_asked_for(core: ResourceCore) -> None:
    result = await core.ask(ask(model=REASONING, prompt="Synthetic case.",
                                params={"reasoning_format": "parsed", "reasoning_effort": "low"}))
    assert result.completion.reasoning and result.completion.reasoning_tokens > 0
    assert result.completion.message["reasoning"] == result.completion.reasoning


IMAGE_PART = {"type": "image_url", "image_url": {"url": "https://example.org/x.png"}}


@pytest.mark.parametrize(("fields", "says"), [
    ({"messages": [USER, {"role": "tool", "content": "42"}]}, "tool_call_id"),
    ({"prompt": "x", "params": {"n": 2}}, "'n'"),
    ({"prompt": "x", "params": {"stop": ["a", "b", "c", "d", "e"]}}, "maximum number of items is 4"),
    ({"prompt": "x", "params": {"tools": [{"type": "function", "function": {"name": f"t{n}"}}
                                          for n in range(129)]}}, "maximum number of items is 128"),
    ({"prompt": "x", "params": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "a", "schema": {"type": "array", "items": {"type": "string"}}}}}}, "root must be of type 'object'"),
    ({"prompt": "x", "params": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "a", "schema": ["not", "an", "object"]}}}}, "must be a JSON object"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, IMAGE_PART]}]}, "does not take images"),
    ({"prompt": "x", "params": {"reasoning_effort": "high"}}, "not supported with model"),
])
async def test_what_groq_would_refuse_is_refused_before_quota_is_spent(
        core: ResourceCore, endpoint: LocalEndpoint, fields: dict[str, Any], says: str) -> None:
    before = {w.name: w.used for m in core.snapshot().quota.models for w in m.windows}
    with pytest.raises(ChatRefused) as refused:
        await core.ask(ask(model=MODEL, **fields))
    assert says in str(refused.value)
    assert refused.value.status == 400 and refused.value.body["error"]["type"] == "invalid_request_error"
    assert endpoint.stats.requests == 0
    assert {w.name: w.used for m in core.snapshot().quota.models for w in m.windows} == before


async def test_the_ledger_records_finish_reason_tool_calls_and_tier(core: ResourceCore) -> None:
    await core.ask(ask(messages=[USER], params={"tools": [LOOKUP], "service_tier": "flex"}))
    await core.ask(ask(prompt="Synthetic.", params={"service_tier": "on_demand"}))
    records = (await core.request_history(limit=2)).requests  # newest first
    assert [(r.finish_reason, r.tool_calls, r.service_tier) for r in records] == [
        ("stop", 0, "on_demand"), ("tool_calls", 1, "flex")]


async def test_a_conversation_kept_in_an_agent_context_is_sent_and_extended(core: ResourceCore) -> None:
    context = core.contexts.acquire("triage-7")
    context.messages.extend([SYSTEM, USER])
    result = await core.ask(PromptRequest(agent="triage", messages=context.messages,
                                          params={"tools": [LOOKUP]}))
    context.messages.append(result.completion.message)
    context.messages.append({"role": "tool", "tool_call_id": result.completion.tool_calls[0].id, "content": "{}"})
    again = await core.ask(PromptRequest(agent="triage", messages=context.messages, params={"tools": [LOOKUP]}))
    context.messages.append(again.completion.message)
    assert [m["role"] for m in context.messages] == ["system", "user", "assistant", "tool", "assistant"]
    core.contexts.release("triage-7")


@pytest.mark.usefixtures("knowledge_ready")
def test_ask_file_sends_a_tools_line_and_a_schema_line_and_prints_groqs_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shape = {"type": "json_schema", "json_schema": {"name": "triage", "schema": TRIAGE, "strict": True}}
    prompts = tmp_path / "agents.jsonl"
    prompts.write_text(
        json.dumps({"agent": "medication", "messages": [SYSTEM, USER], "tools": [LOOKUP], "tool_choice": "required"})
        + "\n" + json.dumps({"agent": "triage", "system": "Answer in JSON.", "prompt": "Synthetic note.",
                             "response_format": shape, "temperature": 0.2}) + "\n")
    assert main(["ask", "--file", str(prompts)]) == 0
    lines = {line.get("line"): line for line in map(json.loads, capsys.readouterr().out.splitlines())}
    tool_line, schema_line = lines[1], lines[2]
    assert tool_line["finish_reason"] == "tool_calls"
    (call,) = tool_line["message"]["tool_calls"]
    assert call["function"]["name"] == "lookup_icd10_code" and tool_line["message"]["content"] is None
    jsonschema.validate(json.loads(call["function"]["arguments"]), LOOKUP["function"]["parameters"])
    assert schema_line["finish_reason"] == "stop" and schema_line["message"]["role"] == "assistant"
    jsonschema.validate(json.loads(schema_line["message"]["content"]), TRIAGE)
    assert lines[None]["summary"]["answered"] == 2


def test_ask_file_refuses_a_line_groq_would_refuse_naming_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "bad.jsonl"
    prompts.write_text(json.dumps({"agent": "triage", "messages": [USER, {"role": "tool", "content": "x"}]}) + "\n"
                       + json.dumps({"agent": "triage", "prompt": "x", "stop": ["1", "2", "3", "4", "5"]}) + "\n"
                       + '{"agent": "triage", "prompt": "x", "seed": ' + "9" * 4_400 + "}\n")
    assert main(["ask", "--file", str(prompts)]) == 2
    err = capsys.readouterr().err
    assert "line 1: 'messages.1' : for 'role:tool'" in err and "line 2: 'stop' : maximum number of items is 4" in err
    assert "line 3 is not valid JSON" in err and "Traceback" not in err


MARK = "MRN5551234"  # planted in every place patient data can travel in a chat request


def planted(n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tool = {"type": "function", "function": {
        "name": "lookup_patient", "description": f"Find {MARK}-desc-{n}",
        "parameters": {"type": "object", "properties": {"mrn": {"type": "string", "description": f"{MARK}-arg"}}}}}
    messages = [
        {"role": "system", "content": f"{MARK}-system-{n}"},
        {"role": "user", "content": [{"type": "text", "text": f"Jane Roe {MARK}-user-{n}"},
                                     {"type": "image_url", "image_url": {"url": f"https://x.example/{MARK}.png"}}]},
        {"role": "assistant", "content": None, "reasoning": f"{MARK}-reasoning",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "lookup_patient", "arguments": json.dumps({"mrn": f"{MARK}-args"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"name": f"Jane Roe {MARK}-result"})},
    ]
    shape = {"type": "json_schema", "json_schema": {"name": "note", "schema": {
        "type": "object", "properties": {"summary": {"type": "string", "description": f"{MARK}-schema"}}}}}
    return messages, {"tools": [tool], "response_format": shape, "user": f"{MARK}-user-field"}


def store_text(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    seen: list[str] = []
    for key in client.scan_iter(count=1_000):
        kind = client.type(key).decode()
        value: object = {"string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1),
                         "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
                         "stream": lambda k: client.xrange(k)}.get(kind, lambda k: b"")(key)
        seen.append(f"{key!r} {value!r}")
    client.close()
    return "\n".join(seen)


async def test_no_planted_marker_reaches_logs_ledger_store_or_errors(
        endpoint: LocalEndpoint, locations: Locations, monkeypatch: pytest.MonkeyPatch, knowledge_ready: object,
        redis_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import duckdb

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GROQ_BASE_URL", endpoint.url)
    core = ResourceCore(Settings(batch_interval=0.0, store_url=redis_server.url), locations)
    await core.start()
    errors: list[str] = []
    try:
        for n in range(3):
            messages, params = planted(n)
            result = await core.ask(PromptRequest(agent="medication", model=VISION, messages=messages, params=params,
                                                  client="triage-bot"))
            assert result.completion.finish_reason in ("stop", "tool_calls")
        messages, params = planted(9)
        for refused in ({"model": MODEL, "messages": messages, "params": params},  # no vision on this model
                        {"model": VISION, "messages": [*messages[:3], {"role": "tool", "content": MARK}],
                         "params": params}):
            with pytest.raises(ChatRefused) as error:
                await core.ask(PromptRequest(agent="medication", **refused))
            errors.append(str(error.value))
        await asyncio.sleep(2.5)  # two heartbeats: snapshots and the request stream are published
    finally:
        await core.stop()
    ledger_files = sorted(locations.data_dir.glob("ops*.duckdb"))
    assert ledger_files
    dumped = []
    for path in ledger_files:
        with duckdb.connect(str(path), read_only=True) as con:
            for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
                dumped.append(repr(con.execute(f'SELECT * FROM "{table}"').fetchall()))
    ledger = "\n".join(dumped)
    assert "triage-bot" in ledger and "on_demand" in ledger  # what is kept is there...
    store = store_text(redis_server.url)
    assert "triage-bot" in store  # ...and the request stream reached the store
    for where, text in (("logs", caplog.text), ("ledger", ledger), ("store", store), ("errors", "\n".join(errors))):
        assert MARK not in text and "Jane Roe" not in text, f"patient data in the {where}"
