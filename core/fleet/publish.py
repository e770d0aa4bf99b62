"""What each fleet member shows the others: its snapshot and its finished requests, never patient data.

Every heartbeat a member writes its `CoreSnapshot` (as JSON, expiring after
SNAPSHOT_TTL so a dead member's copy goes stale and then away) and appends the
requests it finished since the last beat to a capped stream, as the ledger
records them: figures, ids and labels, never prompt text. Document file names
and the graph histories stay home: names may identify a patient, and the
histories are large and only this member's console draws them.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable

import orjson

from medops.core.ledger.records import RequestRecord
from medops.core.snapshot import CoreSnapshot, snapshot_to_dict

SNAPSHOT_TTL = 15.0  # seconds a member's snapshot outlives its last beat
STREAM_MAXLEN = 10_000  # finished requests kept in the fleet's stream (approximately: MAXLEN ~)
RECORDS_BUFFERED = 5_000  # between beats; a store away longer drops the oldest from the stream only


def published(snapshot: CoreSnapshot) -> bytes:
    """The snapshot as the fleet sees it: JSON, without document names or graph histories."""
    documents = snapshot.documents
    recent = tuple(dataclasses.replace(job, name="") for job in documents.recent)
    system = dataclasses.replace(snapshot.system, cpu_history=(), memory_history=())
    shown = dataclasses.replace(snapshot, documents=dataclasses.replace(documents, recent=recent), system=system)
    return orjson.dumps(snapshot_to_dict(shown))


def stream_fields(instance: str, record: RequestRecord) -> dict[str | bytes, str]:
    """One finished request as a stream entry: the ledger's figures and the member that sent it."""
    fields = {k: v for k, v in dataclasses.asdict(record).items() if v is not None}
    entry: dict[str | bytes, str] = {"instance": instance}
    entry.update((k, str(v)) for k, v in fields.items())
    return entry


class RecordBuffer:
    """Finished requests waiting for the next heartbeat to go to the fleet's stream (a `RequestRecorder`)."""

    def __init__(self) -> None:
        self.pending: deque[RequestRecord] = deque(maxlen=RECORDS_BUFFERED)

    def record_request(self, record: RequestRecord) -> None:
        self.pending.append(record)

    def take(self) -> Iterable[RequestRecord]:
        """The records queued since the last take, oldest first."""
        while self.pending:
            yield self.pending.popleft()
