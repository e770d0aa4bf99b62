"""The fleet's history as a reader sees it from the store: every member's finished requests and alert
announcements, newest first, a page at a time, without a core.

Members append both to capped streams (`fleet.publish`); this reads them back
with XREVRANGE, each page starting just before the oldest entry id of the last
one (an exclusive start, so paging back neither skips nor repeats). A filter
(model, agent) is applied while scanning, in chunks, until the page is full or
the stream ends. Entries carry figures, ids and labels only: prompt text is
never written to the streams, so it cannot come back from here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from medops.core.fleet.publish import ALERT_STREAM, REQUEST_STREAM
from medops.core.fleet.view import FleetUnavailable
from medops.core.ledger.records import RequestRecord
from medops.core.settings.redact import redact_url
from medops.core.snapshot import Alert

MAX_PAGE = 1_000  # rows one page may ask for
SCAN_CHUNK = 500  # entries one XREVRANGE reads while a filter looks for a page's rows

T = TypeVar("T")
Entry = tuple[str, Mapping[str, str]]  # a stream entry: its id and its fields


@dataclass(frozen=True)
class FleetRequest:
    """One finished request from the fleet's stream, and the member that sent it."""

    entry_id: str  # the stream's id: where an older page starts
    instance: str
    member: str  # short name for a table: host:pid when the member described itself, else its instance id
    record: RequestRecord


@dataclass(frozen=True)
class FleetAlert:
    """One alert announcement from the fleet's stream, and the member that made it."""

    entry_id: str
    instance: str
    member: str
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
        entries, older = await _scan(client, f"{prefix}{REQUEST_STREAM}", before, limit, wanted)
        labels = await _labels(client, prefix)
        rows, unread = _parsed(entries, lambda i, fields: FleetRequest(
            i, fields["instance"], labels.get(fields["instance"], fields["instance"]), _request(fields)))
        return FleetRequests(rows, older, _unread_note(unread, "requests"))

    return await _with_store(url, namespace, password, budget, page)


async def read_alerts(url: str, namespace: str, password: str | None = None, before: str | None = None,
                      limit: int = 100, budget: float = 2.0) -> FleetAlerts:
    """A page of the fleet's alert announcements, older than entry `before`."""
    check_page(limit)

    async def page(client: redis.Redis, prefix: str) -> FleetAlerts:
        entries, older = await _scan(client, f"{prefix}{ALERT_STREAM}", before, limit, lambda fields: True)
        labels = await _labels(client, prefix)
        rows, unread = _parsed(entries, lambda i, fields: FleetAlert(
            i, fields["instance"], labels.get(fields["instance"], fields["instance"]),
            Alert(**orjson.loads(fields["alert"]))))
        return FleetAlerts(rows, older, _unread_note(unread, "alert announcements"))

    return await _with_store(url, namespace, password, budget, page)


async def read_heads(url: str, namespace: str, password: str | None = None, budget: float = 2.0) -> StreamHeads:
    """The newest entry id of both streams, in one round trip."""

    async def heads(client: redis.Redis, prefix: str) -> StreamHeads:
        async with client.pipeline(transaction=False) as pipe:
            pipe.xrevrange(f"{prefix}{REQUEST_STREAM}", count=1)
            pipe.xrevrange(f"{prefix}{ALERT_STREAM}", count=1)
            requests, alerts = await pipe.execute()
        return StreamHeads(requests[0][0] if requests else "", alerts[0][0] if alerts else "")

    return await _with_store(url, namespace, password, budget, heads)


def member_label(instance: str, description: Mapping[str, Any]) -> str:
    """host:pid (the host's first label: a table column is narrow), or the instance id when not described."""
    host, pid = str(description.get("host", "")), description.get("pid")
    return f"{host.split('.')[0]}:{pid}" if host and pid else instance


# ---- inside --------------------------------------------------------------------------


async def _with_store(url: str, namespace: str, password: str | None, budget: float,
                      read: Callable[[redis.Redis, str], Awaitable[T]]) -> T:
    if not url:
        raise FleetUnavailable("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
    client = redis.Redis.from_url(url, password=password or None, socket_timeout=budget,
                                  socket_connect_timeout=budget, decode_responses=True)
    try:
        return await read(client, f"medops:{namespace}:")
    except (RedisError, OSError) as exc:
        raise FleetUnavailable(f"quota store {redact_url(url)} cannot be read ({type(exc).__name__}); "
                               "check store_url, MEDOPS_STORE_PASSWORD and that the store runs") from None
    finally:
        await client.aclose()


async def _scan(client: redis.Redis, key: str, before: str | None, limit: int,
                wanted: Callable[[Mapping[str, str]], bool]) -> tuple[list[Entry], str | None]:
    """Up to `limit` wanted entries older than `before`, newest first, and where the next page starts.

    One entry past the page is looked for, so a page that ends the stream says so (older None)."""
    found: list[Entry] = []
    end = f"({before}" if before else "+"
    count = limit + 1  # enough without a filter; with one, later reads take bigger chunks
    while True:
        chunk = cast(list[Entry], await cast(Any, client.xrevrange(key, max=end, min="-", count=count)))
        for entry in chunk:
            if not wanted(entry[1]):
                continue
            if len(found) == limit:
                return found, found[-1][0]
            found.append(entry)
        if len(chunk) < count:
            return found, None
        end = f"({chunk[-1][0]}"
        count = max(limit + 1, SCAN_CHUNK)


def _parsed(entries: list[Entry], build: Callable[[str, Mapping[str, str]], T]) -> tuple[tuple[T, ...], int]:
    """The entries built into rows, and how many could not be (written by another version, or damaged)."""
    rows: list[T] = []
    for entry_id, fields in entries:
        try:
            rows.append(build(entry_id, fields))
        except (KeyError, TypeError, ValueError):
            continue  # counted below and said in the page's note
    return tuple(rows), len(entries) - len(rows)


def _unread_note(unread: int, what: str) -> str:
    if not unread:
        return ""
    return f"{unread} {what} in the fleet's stream could not be read (written by another medops version?) " \
           "and are left out"


_REQUEST_TYPES = typing.get_type_hints(RequestRecord)


def _request(fields: Mapping[str, str]) -> RequestRecord:
    """A stream entry's strings back into a `RequestRecord` (fields it lacks keep their defaults)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(RequestRecord):
        if field.name not in fields:
            continue
        raw, kind = fields[field.name], _REQUEST_TYPES[field.name]
        if kind in (int, int | None):
            values[field.name] = int(raw)
        elif kind is float:
            values[field.name] = float(raw)
        else:
            values[field.name] = raw
    return RequestRecord(**values)


async def _labels(client: redis.Redis, prefix: str) -> dict[str, str]:
    """instance -> host:pid, for the members the store still describes."""
    described = await cast(Any, client.hgetall(f"{prefix}members"))
    labels = {}
    for name, raw in described.items():
        try:
            labels[name] = member_label(name, orjson.loads(raw))
        except (orjson.JSONDecodeError, AttributeError):
            labels[name] = name
    return labels
