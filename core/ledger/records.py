"""What the ledger keeps for the Groq path: admissions (so the day's quota survives a restart) and finished
requests (figures only, never prompt text). The quota and the scheduler write through these contracts; the
ledger implements them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class AdmissionStore(Protocol):
    """Durable record of quota admissions, so the day's usage survives a restart.

    `record_admission` must not block the event loop (buffer and write in the
    background). `tokens` may be negative: a settlement giving back an unused
    reservation, stamped with the original admission's `at_wall`.
    """

    def record_admission(self, model: str, at_wall: float, requests: int, tokens: int) -> None:
        """Remember that `requests` and `tokens` were admitted for `model` at `at_wall`."""
        ...

    def load_admissions(self, since_wall: float) -> list[tuple[str, float, int, int]]:
        """Every (model, at_wall, requests, tokens) recorded at or after `since_wall`."""
        ...


@dataclass(frozen=True)
class RequestRecord:
    """One finished request for the ledger: figures only, never prompt text."""

    at_wall: float
    agent: str
    priority: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency: float
    queue_wait: float
    outcome: str  # "ok", "rate_limited", "rejected", "failed", "timeout", "cancelled", "refused"
    status: int | None = None  # HTTP status when there was one
    attempts: int = 0  # HTTP attempts made (0: refused before sending, or recorded before attempts were kept)
    request_id: str = ""  # the PromptRequest's id, as error messages name it ("": recorded before ids were kept)
    client: str = ""  # the gateway key's name it came through ("": not through the gateway)
    finish_reason: str = ""  # stop, length, tool_calls ("": no answer)
    tool_calls: int = 0  # tool calls in the answer (how many, never what)
    cached_tokens: int = 0  # of prompt_tokens, served from Groq's prompt cache
    reasoning_tokens: int = 0  # of completion_tokens
    service_tier: str = ""  # the tier that answered (on_demand, flex, performance)


class RequestRecorder(Protocol):
    """Where finished requests are recorded (the ledger)."""

    def record_request(self, record: RequestRecord) -> None:
        """Record one finished request; must not block the event loop."""
        ...


class RecorderFanOut:
    """Records each finished request everywhere it is wanted: the ledger, the fleet's stream, metrics."""

    def __init__(self, recorders: list[RequestRecorder]) -> None:
        self._recorders = tuple(recorders)

    def record_request(self, record: RequestRecord) -> None:
        for recorder in self._recorders:
            recorder.record_request(record)
