"""What each fleet member shows the others: its snapshot and its finished requests, never patient data.

Every heartbeat a member writes its `CoreSnapshot` (as JSON, expiring after
SNAPSHOT_TTL so a dead member's copy goes stale and then away) and appends the
requests it finished and the alerts it announced since the last beat to two
capped streams, as the ledger records them: figures, ids and labels, never
prompt text (`fleet.history` reads them back for the console's History tab). Document file names,
the document errors' texts (they may quote a name) and the graph histories stay home: names may
identify a patient, and the histories are large and only this member's console draws them.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable

import orjson

from medops.core.ledger.records import RequestRecord
from medops.core.snapshot import Alert, CoreSnapshot, snapshot_to_dict

SNAPSHOT_TTL = 15.0  # seconds a member's snapshot outlives its last beat
REQUEST_STREAM = "requests"  # the streams' names under the fleet's prefix
ALERT_STREAM = "alerts"
STREAM_MAXLEN = 10_000  # finished requests kept in the fleet's stream (approximately: MAXLEN ~)
ALERT_STREAM_MAXLEN = 2_000  # alert announcements kept (they are far fewer than requests)
RECORDS_BUFFERED = 5_000  # between beats; a store away longer drops the oldest from the stream only


def published(snapshot: CoreSnapshot) -> bytes:
    """The snapshot as the fleet sees it: JSON, without document names, error texts or graph histories.

    A document job goes out as its id, state, error code and sizes: a failure's message may name the file
    (`JaneDoe_MRN5551234_empty.pdf is empty`), and file names are patient data."""
    documents = snapshot.documents
    recent = tuple(dataclasses.replace(job, name="", error="") for job in documents.recent)
    system = dataclasses.replace(snapshot.system, cpu_history=(), memory_history=())
    shown = dataclasses.replace(snapshot, documents=dataclasses.replace(documents, recent=recent), system=system)
    return orjson.dumps(snapshot_to_dict(shown))


def stream_fields(instance: str, record: RequestRecord) -> dict[str | bytes, str]:
    """One finished request as a stream entry: the ledger's figures and the member that sent it."""
    fields = {k: v for k, v in dataclasses.asdict(record).items() if v is not None}
    entry: dict[str | bytes, str] = {"instance": instance}
    entry.update((k, str(v)) for k, v in fields.items())
    return entry


def alert_fields(instance: str, alert: Alert) -> dict[str | bytes, str]:
    """One alert announcement as a stream entry: the alert as JSON (its message names metrics, never patients)."""
    return {"instance": instance, "alert": orjson.dumps(dataclasses.asdict(alert)).decode()}


class RecordBuffer:
    """Finished requests and alert announcements waiting for the next heartbeat to go to the fleet's streams
    (a `RequestRecorder` and the tick's `AlertRecorder`)."""

    def __init__(self) -> None:
        self.pending: deque[RequestRecord] = deque(maxlen=RECORDS_BUFFERED)
        self.pending_alerts: deque[Alert] = deque(maxlen=RECORDS_BUFFERED)

    def record_request(self, record: RequestRecord) -> None:
        self.pending.append(record)

    def record_alert(self, alert: Alert) -> None:
        self.pending_alerts.append(alert)

    def take(self) -> Iterable[RequestRecord]:
        """The records queued since the last take, oldest first."""
        while self.pending:
            yield self.pending.popleft()

    def take_alerts(self) -> Iterable[Alert]:
        """The announcements queued since the last take, oldest first."""
        while self.pending_alerts:
            yield self.pending_alerts.popleft()
