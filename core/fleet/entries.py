"""What a reader takes from the fleet's store, parsed once at the edge into typed values, or refused.

Anything in the store may have been written by a buggy member, another
version or an attacker with the store's password: each entry is checked on its
own (type, range, size) and one that fails is skipped and counted, never let
through to a reader that would die on it. Names are checked against
`inert_text.NAME` and shown escaped when they fail it; all text has its control
characters made visible. Past this module nothing re-checks a value's shape.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from medops.core.inert_text import name, visible
from medops.core.ledger.records import RequestRecord
from medops.core.snapshot import Alert, CoreSnapshot, alert_from_dict, snapshot_from_dict

MAX_MEMBERS = 1_000  # members one reading lists; beyond that they are counted, not read
MEMBER_BYTES = 4_096  # a member's description is ~150 bytes
SNAPSHOT_BYTES = 1 << 20  # a published snapshot is ~20 KiB; larger ones are not fetched (STRLEN first)
TEXT_CHARS = 500  # characters of a free text (an acknowledgement's detail) kept
PID_BOUND = 2**31
ALERT_BYTES = 8_192  # an alert announcement's JSON is ~300 bytes
COUNT_BOUND = 10**12  # beyond any token count or attempt number one request has
SECONDS_BOUND = 10**10  # a wall time (year 2286) or a duration beyond any request's


class Malformed(ValueError):
    """A store entry this reader cannot take; says what is wrong in words safe to show."""


@dataclass(frozen=True)
class Description:
    """A member as it described itself when it joined (missing fields: '?' or 0)."""

    host: str = "?"
    pid: int = 0
    role: str = "?"
    version: str = "?"
    started: float = 0.0


@dataclass
class Skips:
    """Entries skipped in one reading, by what was wrong with them, for the screen to say."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, what: str, n: int = 1) -> None:
        if n > 0:
            self.counts[what] += n

    def frozen(self) -> Mapping[str, int]:
        return dict(self.counts)


def skipped_note(skipped: Mapping[str, int]) -> str:
    """'2 malformed member entries skipped, 1 snapshot over 1 MiB skipped'; '' when nothing was."""
    return ", ".join(f"{n:,} {what} skipped" for what, n in sorted(skipped.items()))


def _json(raw: bytes | str | None, what: str) -> Any:
    if raw is None:
        raise Malformed(f"{what}: missing")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Malformed(f"{what}: not JSON") from None


def _int(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Malformed(f"{what}: expected a whole number from {low} to {high}")
    return value


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Malformed(f"{what}: expected a number")
    return float(value)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"{what}: expected text")
    return name(value)


def member_name(raw: bytes | str) -> str:
    """A member's instance id as a key of the store: checked, escaped when it fails the pattern."""
    return name(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)


def description(raw: bytes | str | None) -> Description:
    """A member's description from the members hash; `Malformed` if it is not an object of the right types."""
    if raw is not None and len(raw) > MEMBER_BYTES:
        raise Malformed(f"member description: over {MEMBER_BYTES} bytes")
    data = _json(raw, "member description")
    if not isinstance(data, dict):
        raise Malformed("member description: expected an object")
    return Description(
        host=_name(data.get("host", "?"), "host"), pid=_int(data.get("pid", 0), 0, PID_BOUND, "pid"),
        role=_name(data.get("role", "?"), "role"), version=_name(data.get("version", "?"), "version"),
        started=_float(data.get("started", 0.0), "started"))


def published_snapshot(raw: bytes | str | None) -> CoreSnapshot:
    """A member's published snapshot; `Malformed` if it is too large, not JSON or not a snapshot."""
    if raw is not None and len(raw) > SNAPSHOT_BYTES:
        raise Malformed(f"snapshot: over {SNAPSHOT_BYTES // (1 << 20)} MiB")
    data = _json(raw, "snapshot")
    if not isinstance(data, dict):
        raise Malformed("snapshot: expected an object")
    try:
        return snapshot_from_dict(data)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise Malformed(f"snapshot: {visible(str(exc))[:200]}") from None


def text(value: Any, what: str) -> str:
    """A free text (a refusal's reason): text, its control characters visible, cut at `TEXT_CHARS`."""
    if not isinstance(value, str):
        raise Malformed(f"{what}: expected text")
    return visible(value[:TEXT_CHARS])


_RECORD_TYPES = typing.get_type_hints(RequestRecord)
_RECORD_NAMES = frozenset({"agent", "priority", "model", "outcome", "request_id", "client", "finish_reason",
                           "service_tier"})


def stream_request(fields: Mapping[str, str]) -> RequestRecord:
    """One entry of the fleet's request stream (`publish.stream_fields`) as a `RequestRecord`; `Malformed` if a
    field is missing or of the wrong type or range. Fields it lacks keep their defaults; unknown ones are
    ignored (a newer member may add some); names fail to `inert_text.name`'s quoted form."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(RequestRecord):
        raw = fields.get(f.name)
        if raw is None:
            continue
        kind = _RECORD_TYPES[f.name]
        if kind is str:
            values[f.name] = name(raw) if raw and f.name in _RECORD_NAMES else visible(raw[:TEXT_CHARS])
        elif f.name == "status":
            values[f.name] = _int(_number(raw, int, f.name), 100, 599, f.name)
        elif kind is int:
            values[f.name] = _int(_number(raw, int, f.name), 0, COUNT_BOUND, f.name)
        else:
            number = _float(_number(raw, float, f.name), f.name)
            if not 0 <= number <= SECONDS_BOUND:
                raise Malformed(f"{f.name}: expected a number from 0 to {SECONDS_BOUND}")
            values[f.name] = number
    try:
        return RequestRecord(**values)
    except TypeError:
        raise Malformed("request entry: a required field is missing") from None


def _number(raw: str, kind: type[int] | type[float], what: str) -> int | float:
    if len(raw) > 32:  # int() of a 4,400-digit string is slow, and no figure is that long
        raise Malformed(f"{what}: expected a number")
    try:
        return kind(raw)
    except ValueError:
        raise Malformed(f"{what}: expected a number") from None


def stream_alert(raw: str | None) -> Alert:
    """One alert announcement (`publish.alert_fields`' JSON) as an `Alert`; `Malformed` if it is too large, not
    an object or a field has the wrong type or range. Its name and rule are names; its message, text."""
    if raw is not None and len(raw) > ALERT_BYTES:
        raise Malformed(f"alert: over {ALERT_BYTES} bytes")
    data = _json(raw, "alert")
    if not isinstance(data, dict):
        raise Malformed("alert: expected an object")
    try:
        alert = alert_from_dict(data)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise Malformed(f"alert: {visible(str(exc))[:200]}") from None
    for when in (alert.opened_at, alert.updated_at, alert.cleared_at, alert.silenced_until):
        if when is not None and not 0 <= when <= SECONDS_BOUND:
            raise Malformed(f"alert: a time out of range 0 to {SECONDS_BOUND}")
    if not 0 <= alert.repeats <= COUNT_BOUND:
        raise Malformed("alert: repeats out of range")
    return dataclasses.replace(alert, name=name(alert.name), rule=name(alert.rule) if alert.rule else "",
                               message=text(alert.message, "alert message"))
