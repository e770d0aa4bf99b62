"""A scripted core for the gateway's own tests: what it was asked, and an answer (or error) set by the test.

Stands in for the core until issue 24's `PromptRequest.from_body` seam is merged; the
end-to-end tests run the real core and SDKs.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest

from medops.core.groq.requests import Attempt, Priority, PromptRequest
from medops.core.settings.config import Settings
from medops.core.snapshot import CoreSnapshot, ModelQuota, QuotaSnapshot, WindowUsage

MODEL = "llama-3.1-8b-instant"


FakeStart = Attempt


@dataclass(frozen=True)
class FakePrompt:
    body: Mapping[str, Any]
    agent: str
    priority: Priority
    deadline: float | None
    client: str | None
    on_chunk: Callable[[bytes, FakeStart], Awaitable[None]] | None
    max_priority: Priority = Priority.CRITICAL
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class FakeCompletion:
    body: Mapping[str, Any]
    request_id: str | None = "req_fake"


@dataclass(frozen=True)
class FakeResult:
    completion: FakeCompletion
    queue_wait: float = 0.25
    attempts: int = 1


def completion(text: str = "hello") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


def windows(rpm_used: int = 1, rpd_used: int = 1) -> CoreSnapshot:
    quota = ModelQuota(MODEL, (WindowUsage("rpm", rpm_used, 30, 42.0), WindowUsage("rpd", rpd_used, 14_400, 3_600.0),
                               WindowUsage("tpm", 100, 6_000, 7.5), WindowUsage("tpd", 100, 500_000, 80_000.0)))
    return CoreSnapshot(taken_at=0.0, uptime=1.0, quota=QuotaSnapshot((quota,), MODEL))


class FakeCore:
    """`CoreCommands` as far as the gateway uses it; `answer` is awaited with each request."""

    def __init__(self) -> None:
        self.running = True
        self.settings = Settings()
        self.asked: list[FakePrompt] = []
        self.state = windows()
        self.answer: Callable[[FakePrompt], Awaitable[FakeResult]] = self._plain

    async def _plain(self, prompt: FakePrompt) -> FakeResult:
        return FakeResult(FakeCompletion(MappingProxyType(completion())))  # read-only, as the core hands it on

    def snapshot(self) -> CoreSnapshot:
        return self.state

    def model_quota(self, model: str | None) -> ModelQuota | None:
        return self.state.quota.of(model)

    async def ask(self, request: Any) -> Any:
        self.asked.append(request)
        return await self.answer(request)


def fake_from_body(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PromptRequest.from_body` as issue 24 defines it, recording its arguments."""

    def from_body(body: Mapping[str, Any], *, agent: str, priority: Priority, deadline: float | None,
                  client: str | None, on_chunk: Any = None, max_priority: Priority = Priority.CRITICAL) -> FakePrompt:
        return FakePrompt(body, agent, priority, deadline, client, on_chunk, max_priority)
    monkeypatch.setattr(PromptRequest, "from_body", staticmethod(from_body), raising=False)
