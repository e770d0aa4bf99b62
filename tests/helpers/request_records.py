"""Request records of an earlier run, written straight to the ledger."""

from __future__ import annotations

from medops.core.clock import FakeClock
from medops.core.ledger.records import RequestRecord
from medops.core.ledger.writer import Ledger
from medops.core.settings.paths import Locations

MODEL = "llama-3.1-8b-instant"


def record(at: float, agent: str = "triage", model: str = MODEL, request_id: str = "") -> RequestRecord:
    return RequestRecord(at_wall=at, agent=agent, priority="normal", model=model, prompt_tokens=100,
                         completion_tokens=20, latency=0.5, queue_wait=0.01, outcome="ok", status=200, attempts=1,
                         request_id=request_id)


async def recorded(locations: Locations, clock: FakeClock, records: list[RequestRecord]) -> None:
    """An earlier run's requests, written straight to the ledger (quicker than asking a core)."""
    ledger = Ledger(locations.ops_db, clock)
    await ledger.start()
    for one in records:
        ledger.record_request(one)
    await ledger.stop()

