"""The reservation covers everything Groq counts: random chat requests against the local endpoint's own count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from medops.core.groq.chat import MAX_IMAGES
from medops.core.groq.local.server import CHAT_PATH, LocalEndpoint
from medops.core.groq.requests import PromptRequest
from medops.core.settings.config import ModelLimits
from tests.helpers.endpoint_thread import EndpointThread

MODEL = "vision-and-tools"
ROOMY = ModelLimits(rpm=1_000_000, rpd=100_000_000, tpm=1_000_000_000, tpd=10_000_000_000,
                    context_window=10_000_000, vision=True, reasoning=True)

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
schemas = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean"])},
                          optional={"description": text}),
    lambda inner: st.fixed_dictionaries({"type": st.just("object"),
                                         "properties": st.dictionaries(names, inner, max_size=4)}),
    max_leaves=8)
object_schemas = st.fixed_dictionaries({"type": st.just("object"),
                                        "properties": st.dictionaries(names, schemas, max_size=5)})
tools = st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": names, "parameters": object_schemas}, optional={"description": text})}), max_size=6)
image = st.builds(lambda n: {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{'A' * n}"}},
                  st.integers(4, 200))
user = st.builds(lambda content: {"role": "user", "content": content},
                 text | st.lists(st.builds(lambda t: {"type": "text", "text": t}, text) | image, min_size=1,
                                 max_size=4))
system = st.builds(lambda t: {"role": "system", "content": t}, text)
call = st.builds(lambda i, n, a: {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}},
                 st.integers(0, 99), names, text)
assistant = st.builds(lambda c, calls, r: {"role": "assistant", "content": c, "tool_calls": calls, "reasoning": r},
                      text, st.lists(call, min_size=1, max_size=3), text)
tool = st.builds(lambda i, t: {"role": "tool", "tool_call_id": f"call_{i}", "content": t}, st.integers(0, 99), text)
conversations = st.lists(st.one_of(user, system, assistant, tool), min_size=1, max_size=8)
formats = st.none() | st.just({"type": "json_object"}) | st.builds(
    lambda s: {"type": "json_schema", "json_schema": {"name": "answer", "schema": s}}, object_schemas)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalEndpoint]:
    with EndpointThread(LocalEndpoint({MODEL: ROOMY})) as running:
        yield running


@pytest.fixture(scope="module")
def client(endpoint: LocalEndpoint) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=endpoint.url, timeout=30) as http:
        yield http


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(messages=conversations, tool_list=tools, response_format=formats)
def test_the_reservation_is_never_below_what_the_endpoint_counts(
        client: httpx.Client, messages: list[dict[str, Any]], tool_list: list[dict[str, Any]],
        response_format: dict[str, Any] | None) -> None:
    assume(sum(1 for m in messages for p in (m["content"] if isinstance(m["content"], list) else ())
               if p.get("type") == "image_url") <= MAX_IMAGES)  # more is refused as Groq does: nothing to count
    params: dict[str, Any] = {"tool_choice": "none"} if tool_list else {}
    if tool_list:
        params["tools"] = tool_list
    if response_format is not None:
        params["response_format"] = response_format
    request = PromptRequest(agent="triage", model=MODEL, messages=messages, params=params,
                            max_completion_tokens=16)
    answer = client.post(CHAT_PATH, json=request.chat.body(MODEL, 16))
    assert answer.status_code == 200, answer.text
    counted = answer.json()["usage"]["prompt_tokens"]
    assert request.prompt_estimate >= counted
