"""What a reader takes from the fleet's store, parsed once at the edge into typed values, or refused.

Anything in the store may have been written by a buggy member, another
version or an attacker with the store's password: each entry is checked on its
own (type, range, size) and one that fails is skipped and counted, never let
through to a reader that would die on it. Names are checked against
`inert_text.NAME` and shown escaped when they fail it; all text has its control
characters made visible. Past this module nothing re-checks a value's shape.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from medops.core.inert_text import name, visible
from medops.core.snapshot import CoreSnapshot, snapshot_from_dict

MAX_MEMBERS = 1_000  # members one reading lists; beyond that they are counted, not read
MEMBER_BYTES = 4_096  # a member's description is ~150 bytes
SNAPSHOT_BYTES = 1 << 20  # a published snapshot is ~20 KiB; larger ones are not fetched (STRLEN first)
TEXT_CHARS = 500  # characters of a free text (an acknowledgement's detail) kept
PID_BOUND = 2**31


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
