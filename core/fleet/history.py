"""The fleet's history as a reader sees it from the store: every member's finished requests and alert
announcements, newest first, a page at a time, without a core.

Members append both to capped streams (`fleet.publish`); this reads them back
with XREVRANGE, each page starting just before the oldest entry id of the last
one (an exclusive start, so paging back neither skips nor repeats). A filter
(model, agent) is applied while scanning, in chunks, until the page is full or
the stream ends. Members append in batches, each on its own tick, so the stream's
order is when a batch arrived: a page lists its rows by their own time, newest
first (each member's rows merged by time). Entries carry figures, ids and labels
only: prompt text is never written to the streams, so it cannot come back from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from medops.core.fleet.entries import (
    Malformed,
    member_name,
    stream_alert,
    stream_request,
)
from medops.core.fleet.publish import ALERT_STREAM, REQUEST_STREAM
from medops.core.fleet.view import FleetUnavailable
from medops.core.fleet.wire import namespace_prefix
from medops.core.ledger.records import RequestRecord
from medops.core.settings.redact import redact_url
from medops.core.snapshot import Alert

MAX_PAGE = 1_000  # rows one page may ask for
SCAN_CHUNK = 500  # entries one XREVRANGE reads while a filter looks for a page's rows
SCAN_BOUND = 20_000  # entries one page looks through at most (members keep 10,000; a forged stream may be longer)

T = TypeVar("T")
Entry = tuple[str, Mapping[str, str]]  # a stream entry: its id and its fields


@dataclass(frozen=True)
class FleetRequest:
    """One finished request from the fleet's stream, and the member that sent it."""

    entry_id: str  # the stream's id: where an older page starts
    instance: str  # the member's name, as the Fleet tab and `medops fleet` show it
    record: RequestRecord


@dataclass(frozen=True)
class FleetAlert:
    """One alert announcement from the fleet's stream, and the member that made it."""

    entry_id: str
    instance: str  # the member's name, as the Fleet tab and `medops fleet` show it
    alert: Alert  # `updated_at` is when the announcement was made


@dataclass(frozen=True)
class FleetRequests:
    """A page of the fleet's requests, newest first."""

    requests: tuple[FleetRequest, ...]
    older: str | None  # the entry id the next older page starts before; None: nothing older is kept
    note: str = ""  # entries that could not be read, said so; safe to show


@dataclass(frozen=True)
class FleetAlerts:
    """A page of the fleet's alert announcements, newest first."""

    alerts: tuple[FleetAlert, ...]
    older: str | None
    note: str = ""


@dataclass(frozen=True)
class StreamHeads:
    """The newest entry id of each stream ("" while empty): a reader compares them to know when to read again."""

    requests: str
    alerts: str


def check_page(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise FleetUnavailable(f"asked for a page of {limit} rows: ask for 1 to {MAX_PAGE}")


async def read_requests(url: str, namespace: str, password: str | None = None, before: str | None = None,
                        limit: int = 100, model: str | None = None, agent: str | None = None,
                        budget: float = 2.0) -> FleetRequests:
    """A page of the fleet's requests (only `model`'s and `agent`'s if given), older than entry `before`."""
    check_page(limit)

    def wanted(fields: Mapping[str, str]) -> bool:
        return (model is None or fields.get("model") == model) and (agent is None or fields.get("agent") == agent)

    async def page(client: redis.Redis, prefix: str) -> FleetRequests:
        entries, older, cut = await _scan(client, f"{prefix}{REQUEST_STREAM}", before, limit, wanted)
        parsed, unread = _parsed(entries, lambda fields: stream_request(fields))
        rows = [FleetRequest(i, instance, record) for i, instance, record in parsed]
        rows.sort(key=lambda row: row.record.at_wall, reverse=True)  # stable: a member's own order is kept
        return FleetRequests(tuple(rows), older, _note(unread, "requests", cut))

    return await _with_store(url, namespace, password, budget, page)


async def read_alerts(url: str, namespace: str, password: str | None = None, before: str | None = None,
                      limit: int = 100, budget: float = 2.0) -> FleetAlerts:
    """A page of the fleet's alert announcements, older than entry `before`."""
    check_page(limit)

    async def page(client: redis.Redis, prefix: str) -> FleetAlerts:
        entries, older, cut = await _scan(client, f"{prefix}{ALERT_STREAM}", before, limit, lambda fields: True)
        parsed, unread = _parsed(entries, lambda fields: stream_alert(fields.get("alert")))
        rows = [FleetAlert(i, instance, alert) for i, instance, alert in parsed]
        rows.sort(key=lambda row: row.alert.updated_at, reverse=True)
        return FleetAlerts(tuple(rows), older, _note(unread, "alert announcements", cut))

    return await _with_store(url, namespace, password, budget, page)


async def read_heads(url: str, namespace: str, password: str | None = None, budget: float = 2.0) -> StreamHeads:
    """The newest entry id of both streams, in one round trip."""

    async def heads(client: redis.Redis, prefix: str) -> StreamHeads:
        async with client.pipeline(transaction=False) as pipe:
            pipe.xrevrange(f"{prefix}{REQUEST_STREAM}", count=1)
            pipe.xrevrange(f"{prefix}{ALERT_STREAM}", count=1)
            requests, alerts = await pipe.execute()
        return StreamHeads(_decoded(requests[0])[0] if requests else "", _decoded(alerts[0])[0] if alerts else "")

    return await _with_store(url, namespace, password, budget, heads)


# ---- inside --------------------------------------------------------------------------


async def _with_store(url: str, namespace: str, password: str | None, budget: float,
                      read: Callable[[redis.Redis, str], Awaitable[T]]) -> T:
    if not url:
        raise FleetUnavailable("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
    # Bytes, decoded at the edge (`_decoded`): with decode_responses one value that is not UTF-8 would
    # raise inside the client and lose the whole page.
    client = redis.Redis.from_url(url, password=password or None, socket_timeout=budget,
                                  socket_connect_timeout=budget, decode_responses=False)
    try:
        return await read(client, namespace_prefix(namespace))
    except (RedisError, OSError) as exc:
        raise FleetUnavailable(f"quota store {redact_url(url)} cannot be read ({type(exc).__name__}); "
                               "check store_url, MEDOPS_STORE_PASSWORD and that the store runs") from None
    finally:
        await client.aclose()


async def _scan(client: redis.Redis, key: str, before: str | None, limit: int,
                wanted: Callable[[Mapping[str, str]], bool]) -> tuple[list[Entry], str | None, bool]:
    """Up to `limit` wanted entries older than `before`, newest first, where the next page starts, and whether
    the look stopped at SCAN_BOUND entries before the page was full (the next page goes on from there).

    One entry past the page is looked for, so a page that ends the stream says so (older None)."""
    found: list[Entry] = []
    end = f"({before}" if before else "+"
    count = limit + 1  # enough without a filter; with one, later reads take bigger chunks
    scanned = 0
    while True:
        chunk = [_decoded(entry) for entry in await cast(Any, client.xrevrange(key, max=end, min="-", count=count))]
        scanned += len(chunk)
        for entry in chunk:
            if not wanted(entry[1]):
                continue
            if len(found) == limit:
                return found, found[-1][0], False
            found.append(entry)
        if len(chunk) < count:
            return found, None, False
        if scanned >= SCAN_BOUND:
            return found, chunk[-1][0], True
        end = f"({chunk[-1][0]}"
        count = min(max(limit + 1, SCAN_CHUNK), SCAN_BOUND - scanned)


def _decoded(entry: tuple[bytes, Mapping[bytes, bytes]]) -> Entry:
    entry_id, fields = entry
    return entry_id.decode("ascii", "replace"), {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}


def _parsed(entries: list[Entry], build: Callable[[Mapping[str, str]], T]) -> tuple[list[tuple[str, str, T]], int]:
    """Each entry's id, member and value, and how many entries could not be read (another version, or damaged,
    or forged): those are skipped and counted, never let through."""
    rows: list[tuple[str, str, T]] = []
    for entry_id, fields in entries:
        instance = fields.get("instance")
        if instance is None:
            continue
        try:
            rows.append((entry_id, member_name(instance), build(fields)))
        except Malformed:
            continue  # counted below and said in the page's note
    return rows, len(entries) - len(rows)


def _note(unread: int, what: str, cut: bool) -> str:
    notes = []
    if unread:
        notes.append(f"{unread:,} {what} in the fleet's stream could not be read (malformed, or written by another "
                     "medops version) and are left out")
    if cut:
        notes.append(f"this page looked through {SCAN_BOUND:,} entries of the stream; o reads on from there")
    return "; ".join(notes)
