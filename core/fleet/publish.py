"""What each fleet member shows the others: its snapshot and its finished requests, never patient data.

Every heartbeat a member writes its `CoreSnapshot` (as JSON, expiring after
SNAPSHOT_TTL so a dead member's copy goes stale and then away; the last one of a
member that stops cleanly is kept for LEFT_KEEP, its figures listed with it) and appends the
requests it finished and the alerts it announced since the last beat to two
capped streams, as the ledger records them: figures, ids and labels, never
prompt text (`fleet.history` reads them back for the console's History tab). Document file names,
the document errors' texts (they may quote a name) and the graph histories stay home: names may
identify a patient, and the histories are large and only this member's console draws them.

A snapshot is published within the readers' cap (`entries.SNAPSHOT_BYTES`: they
never fetch a larger one) and within what they parse (lists of at most
`snapshot.LIST_ITEMS`, texts of `snapshot.TEXT_CHARS`): one over it is cut
(lists to their newest items, then to its figures alone), never left for
every reader to skip.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from medops.core.fleet.entries import SNAPSHOT_BYTES
from medops.core.ledger.records import RequestRecord
from medops.core.snapshot import LIST_ITEMS, TEXT_CHARS, Alert, CoreSnapshot, snapshot_to_dict

SNAPSHOT_TTL = 15.0  # seconds a member's snapshot outlives its last beat
LEFT_KEEP = 3600.0  # seconds the last snapshot of a member that left cleanly is kept, and it stays listed
REQUEST_STREAM = "requests"  # the streams' names under the fleet's prefix
ALERT_STREAM = "alerts"
STREAM_MAXLEN = 10_000  # finished requests kept in the fleet's stream (approximately: MAXLEN ~)
ALERT_STREAM_MAXLEN = 2_000  # alert announcements kept (they are far fewer than requests)
RECORDS_BUFFERED = 5_000  # between beats; a store away longer drops the oldest from the stream only
CUT_ITEMS = 50  # items each list keeps when LIST_ITEMS each is still over the cap


@dataclass(frozen=True)
class Published:
    """A snapshot as it goes to the store, and how it was cut to fit (`cut` "": whole)."""

    body: bytes
    whole_bytes: int  # its size before any cut
    cut: str  # "", f"lists cut to {n} items" or "figures only": said in the member's log, never the content


def published(snapshot: CoreSnapshot, cap: int = SNAPSHOT_BYTES) -> Published:
    """The snapshot as the fleet sees it: JSON, without document names, error texts or graph histories, at
    most `cap` bytes. Over it, lists keep their first (newest) LIST_ITEMS then CUT_ITEMS items and texts
    TEXT_CHARS characters; still over, only the top-level figures go (no lists at all).

    A document job goes out as its id, state, error code and sizes: a failure's message may name the file
    (`JaneDoe_MRN5551234_empty.pdf is empty`), and file names are patient data."""
    documents = snapshot.documents
    recent = tuple(dataclasses.replace(job, name="", error="") for job in documents.recent)
    system = dataclasses.replace(snapshot.system, cpu_history=(), memory_history=())
    shown = dataclasses.replace(snapshot, documents=dataclasses.replace(documents, recent=recent), system=system)
    body = orjson.dumps(snapshot_to_dict(shown))
    whole = len(body)
    if whole <= cap and not _over_reader_limits(shown):
        return Published(body, whole, "")
    for items in (LIST_ITEMS, CUT_ITEMS):
        body = orjson.dumps(snapshot_to_dict(_cut(shown, items)))
        if len(body) <= cap:
            return Published(body, whole, f"lists cut to {items} items")
    bare = CoreSnapshot(taken_at=snapshot.taken_at, uptime=snapshot.uptime, paused=snapshot.paused)
    return Published(orjson.dumps(snapshot_to_dict(bare)), whole, "figures only")


def _cut(value: Any, items: int) -> Any:
    """`value` with every list cut to its first `items` and every text to TEXT_CHARS characters."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _cut(getattr(value, f.name), items)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, tuple):
        return tuple(_cut(item, items) for item in value[:items])
    if isinstance(value, str):
        return value[:TEXT_CHARS]
    return value


def _over_reader_limits(value: Any) -> bool:
    """Whether any list is longer than LIST_ITEMS (a reader would refuse the whole snapshot)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_over_reader_limits(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, tuple):
        return len(value) > LIST_ITEMS or any(_over_reader_limits(item) for item in value)
    return False


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
