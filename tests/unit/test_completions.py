"""Prompt requests validate themselves; priorities order; gateway errors explain themselves."""

from __future__ import annotations

import pytest

from medops.core.errors import GroqError, SchedulerError
from medops.core.groq.errors import RateLimited, RequestRejected
from medops.core.groq.rate_headers import LimitExceeded
from medops.core.groq.requests import InvalidRequest, Priority, PromptRequest


def test_priorities_order_critical_over_high_over_normal() -> None:
    assert Priority.CRITICAL > Priority.HIGH > Priority.NORMAL
    assert sorted(["normal", "critical", "high"], key=Priority.parse, reverse=True) == ["critical", "high", "normal"]


def test_a_priority_given_by_name_is_turned_into_the_enum() -> None:
    request = PromptRequest("hello", "triage", priority="critical")  # type: ignore[arg-type]
    assert request.priority is Priority.CRITICAL
    assert request.priority.label == "critical"


def test_an_unknown_priority_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidRequest, match="critical, high, normal"):
        PromptRequest("hello", "triage", priority="urgent")  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "message"), [
    ({"agent": " "}, "agent must name"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"max_completion_tokens": True}, "max_completion_tokens"),
    ({"deadline": 0}, "deadline"),
    ({"deadline": float("nan")}, "deadline"),
    ({"model": ""}, "model"),
])
def test_malformed_requests_are_refused_clearly(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"prompt": "hi", "agent": "triage", **changes}
    with pytest.raises(InvalidRequest, match=message):
        PromptRequest(**fields)  # type: ignore[arg-type]


def test_every_request_gets_its_own_id() -> None:
    assert PromptRequest("a", "triage").request_id != PromptRequest("a", "triage").request_id


def test_error_messages_name_the_limit_and_never_the_prompt() -> None:
    limit = LimitExceeded("tpd", 100_000, 97_050, 3_619, 578.016)
    error = RateLimited(578.016, limit)
    assert isinstance(error, GroqError)
    assert "tpd" in str(error) and "9m38.016s" in str(error)
    assert "HTTP 413" in str(RequestRejected(413, "request too large"))
    assert issubclass(InvalidRequest, SchedulerError)


@pytest.mark.parametrize("agent", ["Jane Roe MRN 00123456 " * 910, "Jane Roe", "triage; DROP", "x" * 33, "Triage"])
def test_an_agent_that_is_not_a_label_is_refused_without_being_echoed(agent: str) -> None:
    with pytest.raises(InvalidRequest, match="agent must be one of triage, diagnosis") as refused:
        PromptRequest("hi", agent)
    assert agent not in str(refused.value) and "Jane" not in str(refused.value)


@pytest.mark.parametrize("agent", ["triage", "diagnosis", "medication", "documentation", "oncall"])
def test_the_known_agents_are_accepted(agent: str) -> None:
    assert PromptRequest("hi", agent).agent == agent


@pytest.mark.parametrize("agent", ["nobody", "agent3", "night_shift-2"])
def test_a_label_outside_the_known_set_is_refused_without_being_echoed(agent: str) -> None:
    with pytest.raises(InvalidRequest, match="agent must be one of triage, diagnosis") as refused:
        PromptRequest("hi", agent)
    assert agent not in str(refused.value)
