"""The real groq and openai SDKs through a real `medops gateway` process to the local endpoint.

Only the base URL and the key change: plain and streamed answers, a tool call and its result sent back, and
`json_schema` answers that validate against the schema (the jsonschema library is the judge).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import groq
import jsonschema
import openai
import pytest

from medops.core.groq.local.server import LocalEndpoint
from medops.core.settings.config import ModelLimits
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.gateway_processes import MODEL, GatewayProcess, gateway, medops_for

LIMITS = ModelLimits(rpm=1_000, rpd=100_000, tpm=10_000_000, tpd=100_000_000)
TOOLS = [{"type": "function", "function": {
    "name": "kb_code", "description": "Look up an ICD-10-CM code.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z][0-9]{2}"}},
                   "required": ["code"], "additionalProperties": False}}}]
TRIAGE = {"type": "object", "additionalProperties": False, "required": ["acuity", "red_flags", "codes"],
          "properties": {"acuity": {"type": "integer", "minimum": 1, "maximum": 5},
                         "red_flags": {"type": "array", "items": {"type": "string"}},
                         "codes": {"type": "array", "items": {"$ref": "#/$defs/code"}, "minItems": 1}},
          "$defs": {"code": {"type": "string", "pattern": "^[A-Z][0-9]{2}(\\.[0-9A-Z]{1,4})?$"}}}
ASK = [{"role": "system", "content": "You triage."}, {"role": "user", "content": "Chest pain since noon."}]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, built_knowledge: Path) -> Iterator[tuple[GatewayProcess, str]]:
    """One gateway (its keys in its data folder) before one local endpoint, and a key made by the CLI."""
    folder = tmp_path_factory.mktemp("gateway-sdks")
    with EndpointThread(LocalEndpoint({MODEL: LIMITS})) as endpoint:
        medops = medops_for(folder, endpoint.url, built_knowledge, limits=LIMITS)
        secret = medops.add_key("triage-bot", "triage", "high")
        with gateway(medops, folder / "gateway") as process:
            yield process, secret


def sdk(name: str, running: tuple[GatewayProcess, str]) -> Any:
    process, secret = running
    if name == "groq":
        return groq.Groq(api_key=secret, base_url=process.url)
    return openai.OpenAI(api_key=secret, base_url=process.openai_url)


@pytest.fixture(params=["groq", "openai"])
def client(request: pytest.FixtureRequest, running: tuple[GatewayProcess, str]) -> Iterator[Any]:
    made = sdk(request.param, running)
    yield made
    made.close()


def test_a_plain_answer_with_groqs_and_medops_headers(client: Any) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_completion_tokens=200)
    answer = raw.parse()
    assert answer.choices[0].finish_reason == "stop"
    assert "medops local endpoint" in answer.choices[0].message.content
    assert answer.usage.total_tokens > 0
    assert raw.headers["x-medops-attempts"] == "1" and len(raw.headers["x-medops-request-id"]) == 32
    assert float(raw.headers["x-medops-queue-wait"]) >= 0
    assert int(raw.headers["x-ratelimit-limit-requests"]) == LIMITS.rpd
    assert raw.headers["x-request-id"].startswith("req_")


def test_a_streamed_answer_comes_in_pieces_and_matches_the_plain_one(client: Any) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=200)
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=200,
                                                 stream=True))
    assert len(chunks) > 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_tool_call_and_its_result_sent_back(client: Any) -> None:
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required")
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "kb_code"
    jsonschema.validate(json.loads(call.function.arguments), TOOLS[0]["function"]["parameters"])
    result = {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"code": "R07.9", "title": "x"})}
    then = client.chat.completions.create(model=MODEL, tools=TOOLS, messages=[
        *ASK, first.choices[0].message.model_dump(exclude_none=True), result])
    assert then.choices[0].finish_reason == "stop" and then.choices[0].message.content
    assert not then.choices[0].message.tool_calls


def test_a_streamed_tool_call_comes_whole(client: Any) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, stream=True,
                                                 tool_choice={"type": "function", "function": {"name": "kb_code"}}))
    calls = [call for c in chunks for call in c.choices[0].delta.tool_calls or ()]
    assert [c.function.name for c in calls] == ["kb_code"] and chunks[-1].choices[0].finish_reason == "tool_calls"
    jsonschema.validate(json.loads(calls[0].function.arguments), TOOLS[0]["function"]["parameters"])


def test_a_json_schema_answer_validates_against_the_schema(client: Any) -> None:
    answer = client.chat.completions.create(model=MODEL, messages=ASK, response_format={
        "type": "json_schema", "json_schema": {"name": "triage", "schema": TRIAGE, "strict": True}})
    jsonschema.validate(json.loads(answer.choices[0].message.content), TRIAGE)


def test_the_sdks_own_errors_come_back_typed(client: Any) -> None:
    with pytest.raises((groq.BadRequestError, openai.BadRequestError)) as refused:
        client.chat.completions.create(model=MODEL, messages=[{"role": "tool", "content": "no id"}])
    assert "tool_call_id" in str(refused.value)
    with pytest.raises((groq.AuthenticationError, openai.AuthenticationError)):
        type(client)(api_key="mdk_" + "x" * 43, base_url=str(client.base_url)).chat.completions.create(
            model=MODEL, messages=ASK)


def test_the_models_are_listed_as_medops_serves_them(client: Any) -> None:
    models = client.models.list()
    assert [(m.id, m.owned_by) for m in models.data] == [(MODEL, "medops local endpoint")]


def test_the_async_groq_client_asks_and_streams_concurrently(running: tuple[GatewayProcess, str]) -> None:
    process, secret = running

    async def both() -> tuple[Any, list[Any]]:
        async with groq.AsyncGroq(api_key=secret, base_url=process.url) as client:
            async def chunks() -> list[Any]:
                return [c async for c in await client.chat.completions.create(
                    model=MODEL, messages=ASK, stream=True)]
            return await asyncio.gather(client.chat.completions.create(model=MODEL, messages=ASK), chunks())
    plain, streamed = asyncio.run(both())
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == plain.choices[0].message.content
