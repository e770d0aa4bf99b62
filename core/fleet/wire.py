"""The quota's wire: how Python and the store's Lua library talk, and the only place that knows it.

Every function's keys, argument order, reply positions and write-back entry
format live here, as named tuples; past this module a reply is a typed value.
`Dimension` serves both sides: 1-based on the wire (as the Lua counts), named in
Python. Two wires are spoken:

- version 3 (`quota.lua`, library `medops_quota_v3`): every key in KEYS, under
  the namespace's hash tag (`medops:{ns}:...`), so it runs on Redis Cluster and
  Valkey; windows kept as time buckets.
- version 2 (`quota_v2.lua`, library `medops_quota_v2`): the prefix in KEYS[1],
  keys built inside Lua. Spoken only while members of an older medops that know
  nothing else are alive on the store (a rolling upgrade); see `membership`.

A library is never loaded over one of another version: each has its own name
and function names, so members of both versions run side by side. A change to a
library's arguments, replies or keys is a new version.
"""

from __future__ import annotations

import json
from enum import IntEnum, StrEnum
from typing import Any, NamedTuple

Quad = tuple[int, int, int, int]  # one figure per dimension, in Dimension order


class Dimension(IntEnum):
    """A quota window; its value is its number on the wire (1..4)."""

    RPM = 1
    RPD = 2
    TPM = 3
    TPD = 4

    @property
    def index(self) -> int:
        """Its place in a Quad (0-based)."""
        return self.value - 1

    @property
    def label(self) -> str:
        """Its name as medops shows it: rpm, rpd, tpm, tpd."""
        return self.name.lower()

    @property
    def counts_requests(self) -> bool:
        return self in (Dimension.RPM, Dimension.RPD)


def quad(values: Any) -> Quad:
    """Four wire figures as integers, in Dimension order."""
    a, b, c, d = (int(v) for v in values)
    return (a, b, c, d)


# --- keys ----------------------------------------------------------------------

# The orders quota.lua's NS and MODEL tables expect.
NAMESPACE_KEYS: tuple[str, ...] = ("epoch", "epoch_at", "seeding_until", "seeded", "seed_expect", "alive", "beat",
                                   "share", "members")
MODEL_KEYS: tuple[str, ...] = ("min", "day", "mamt", "damt", "fly", "flyx", "sum", "sig", "wait", "part", "carry",
                               "fresh", "seen")


def namespace_prefix(namespace: str) -> str:
    """Every key of a namespace starts with this; the braces are its Redis Cluster hash tag (one slot)."""
    return f"medops:{{{namespace}}}:"


def legacy_prefix(namespace: str) -> str:
    """The prefix the version 2 library builds its keys from (no hash tag)."""
    return f"medops:{namespace}:"


def model_key(prefix: str, model: str, part: str) -> str:
    """One of a model's quota keys (the same layout in both wires)."""
    return f"{prefix}q:{model}:{part}"


# --- what goes in --------------------------------------------------------------

class Call(NamedTuple):
    """One FCALL: the library that must be loaded for it, the function, its KEYS and ARGV."""

    library: str
    function: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]


class AdmitArgs(NamedTuple):
    instance: str
    id: str
    tokens: int
    priority: int
    waited_ms: int
    limits: Quad
    flight_bound_ms: int
    starvation_ms: int
    waiter_ttl_ms: int
    known_epoch: str


class HeartbeatArgs(NamedTuple):
    instance: str
    description: str
    ttl_ms: int
    flight_bound_ms: int
    known_epoch: str
    seed_grace_ms: int
    new_epoch: str
    models: tuple[tuple[str, Quad], ...]  # each model's name and configured limits


class Settled(NamedTuple):
    """An admission that was answered: it counts `tokens` from `at_ms` (store clock)."""

    id: str
    at_ms: int
    requests: int
    tokens: int


class Flying(NamedTuple):
    """An admission still in flight, reserving `tokens`."""

    id: str
    tokens: int


class Released(NamedTuple):
    """An admission never sent: it ends without counting."""

    id: str


class Carried(NamedTuple):
    """Into an emptied store: another member's part as this one last saw it, until those times (store ms)."""

    member: str
    until_min: int
    until_day: int
    part: Quad


class HoldMinute(NamedTuple):
    """Into an emptied store: the minute windows count as full a minute and an attempt after the epoch began,
    if it began after `since_ms`."""

    attempt_ms: int
    since_ms: int


Entry = Settled | Flying | Released | Carried | HoldMinute


def encode_entry(entry: Entry) -> str:
    """A write-back entry as medops_sync reads it (the same in both wires)."""
    match entry:
        case Settled(id, at_ms, requests, tokens):
            return f"s {id} {at_ms} {requests} {tokens}"
        case Flying(id, tokens):
            return f"f {id} {tokens}"
        case Released(id):
            return f"r {id}"
        case Carried(member, until_min, until_day, part):
            return f"c {member} {until_min} {until_day} {' '.join(str(v) for v in part)}"
        case HoldMinute(attempt_ms, since_ms):
            return f"h {attempt_ms} {since_ms}"
    raise TypeError(f"not a write-back entry: {entry!r}")


# --- what comes back -----------------------------------------------------------

class Status(StrEnum):
    """What an admission answered."""

    OK = "ok"
    WAIT = "wait"
    UNSEEDED = "unseeded"  # the store is empty: a heartbeat starts an epoch
    SEEDING = "seeding"  # members are writing their day back: detail is ms to wait
    EPOCH = "epoch"  # the store was emptied since this member's epoch: detail is the new one


class Usage(NamedTuple):
    """One model's windows as the store counts them at one moment."""

    used: Quad
    limit: Quad
    blocked_ms: Quad
    held_ms: int


class AdmitReply(NamedTuple):
    now_ms: int
    status: Status
    detail: str  # ms to wait (WAIT, SEEDING) or the new epoch (EPOCH)
    usage: Usage | None  # with OK and WAIT
    own: Quad | None  # the asking member's part, with OK and WAIT

    @property
    def wait_ms(self) -> int:
        return int(self.detail)


class HeartbeatReply(NamedTuple):
    now_ms: int
    epoch: str
    seeding_ms: int
    alive: int
    usages: tuple[Usage, ...]  # per model, in the order asked
    parts: tuple[dict[str, Quad], ...]  # per model: each member's part


class SyncReply(NamedTuple):
    now_ms: int
    added: int


_USAGE = 13  # used1..4 limit1..4 blocked1..4 held


def _usage(values: list[Any]) -> Usage:
    return Usage(quad(values[0:4]), quad(values[4:8]), quad(values[8:12]), int(values[12]))


def decode_admit(reply: list[Any]) -> AdmitReply:
    status = Status(str(reply[1]))
    if status not in (Status.OK, Status.WAIT):
        return AdmitReply(int(reply[0]), status, str(reply[2]), None, None)
    return AdmitReply(int(reply[0]), status, str(reply[2]), _usage(reply[3:3 + _USAGE]),
                      quad(reply[3 + _USAGE:3 + _USAGE + 4]))


def decode_heartbeat(reply: list[Any], models: int) -> HeartbeatReply:
    usages = tuple(_usage(reply[4 + _USAGE * i:4 + _USAGE * (i + 1)]) for i in range(models))
    at = 4 + _USAGE * models
    parts: list[dict[str, Quad]] = []
    for _ in range(models):
        count = int(reply[at])
        fields = reply[at + 1:at + 1 + 2 * count]
        at += 1 + 2 * count
        found: dict[str, list[int]] = {}
        for field, value in zip(fields[::2], fields[1::2], strict=True):
            instance, _, d = str(field).rpartition("|")
            if d in ("1", "2", "3", "4"):
                found.setdefault(instance, [0, 0, 0, 0])[Dimension(int(d)).index] = int(value)
        parts.append({instance: quad(p) for instance, p in found.items()})
    return HeartbeatReply(int(reply[0]), str(reply[1]), int(reply[2]), int(reply[3]), usages, tuple(parts))


def decode_sync(reply: list[Any]) -> SyncReply:
    return SyncReply(int(reply[0]), int(reply[1]))


# --- the two wires -------------------------------------------------------------

class Wire:
    """How one version of the library is called: its functions, keys and argument shapes."""

    version = 3
    library = "medops_quota_v3"
    source = "quota.lua"

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = namespace_prefix(namespace)

    def _function(self, name: str) -> str:
        return f"medops_v3_{name}"

    def namespace_keys(self) -> tuple[str, ...]:
        return tuple(self.prefix + k for k in NAMESPACE_KEYS)

    def model_keys(self, model: str) -> tuple[str, ...]:
        """KEYS for a call about `model`: the namespace's, then the model's."""
        return self.namespace_keys() + tuple(model_key(self.prefix, model, k) for k in MODEL_KEYS)

    def _model_call(self, name: str, model: str, *args: Any) -> Call:
        return Call(self.library, self._function(name), self.model_keys(model), args)

    def admit(self, model: str, a: AdmitArgs) -> Call:
        return self._model_call("admit", model, a.instance, a.id, a.tokens, a.priority, a.waited_ms, *a.limits,
                                a.flight_bound_ms, a.starvation_ms, a.waiter_ttl_ms, a.known_epoch)

    def settle(self, model: str, id: str, used: int) -> Call:
        return self._model_call("settle", model, id, used)

    def release(self, model: str, id: str) -> Call:
        return self._model_call("release", model, id)

    def block(self, model: str, dimensions: tuple[Dimension, ...], wait_ms: int) -> Call:
        """A 429 blocks these dimensions for everyone for `wait_ms`."""
        return self._model_call("signal", model, "block", "".join(str(d.value) for d in dimensions), wait_ms)

    def hold(self, model: str, hold_ms: int) -> Call:
        """A 498 holds the model for everyone."""
        return self._model_call("signal", model, "hold", hold_ms)

    def server_limit(self, model: str, d: Dimension, limit: int) -> Call:
        return self._model_call("signal", model, "limit", d.value, limit)

    def server_extra(self, model: str, d: Dimension, limit: int, remaining: int, hold_ms: int) -> Call:
        """The server counts `limit - remaining`: what the fleet does not count is held for `hold_ms`."""
        return self._model_call("signal", model, "extra", d.value, limit, remaining, hold_ms)

    def sync(self, model: str, instance: str, flight_bound_ms: int, entries: list[Entry]) -> Call:
        return self._model_call("sync", model, instance, flight_bound_ms, *(encode_entry(e) for e in entries))

    def heartbeat(self, a: HeartbeatArgs) -> Call:
        keys = self.namespace_keys() + tuple(model_key(self.prefix, name, k) for name, _ in a.models
                                              for k in MODEL_KEYS)
        return Call(self.library, self._function("heartbeat"), keys, (
            a.instance, a.description, a.ttl_ms, a.flight_bound_ms, a.known_epoch, a.seed_grace_ms, a.new_epoch,
            *(" ".join(str(int(v)) for v in limits) for _, limits in a.models)))

    def leave(self, instance: str) -> Call:
        return Call(self.library, self._function("leave"), self.namespace_keys(), (instance,))

    def seeded(self, instance: str, members_seen: int) -> Call:
        return Call(self.library, self._function("seeded"), self.namespace_keys(), (instance, members_seen))

    def clear(self, model: str) -> Call:
        """Lift the model's blocks and holds: its signal hash is the only key."""
        return Call(self.library, self._function("clear"), (model_key(self.prefix, model, "sig"),), ())

    def signal_key(self, model: str) -> str:
        return model_key(self.prefix, model, "sig")


class LegacyWire(Wire):
    """Version 2, as medops before the typed wire speaks it: the prefix in KEYS[1], the model first in ARGV.
    Its heartbeat marks this member's description with the newest wire it knows, so the others can tell it
    from a member that speaks only version 2."""

    version = 2
    library = "medops_quota_v2"
    source = "quota_v2.lua"

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.prefix = legacy_prefix(namespace)

    def _function(self, name: str) -> str:
        return f"medops_{name}"

    def _model_call(self, name: str, model: str, *args: Any) -> Call:
        return Call(self.library, self._function(name), (self.prefix,), (model, *args))

    def heartbeat(self, a: HeartbeatArgs) -> Call:
        return Call(self.library, self._function("heartbeat"), (self.prefix,), (
            a.instance, marked(a.description), a.ttl_ms, a.flight_bound_ms, a.known_epoch, a.seed_grace_ms,
            a.new_epoch, *(f"{name} {' '.join(str(int(v)) for v in limits)}" for name, limits in a.models)))

    def leave(self, instance: str) -> Call:
        return Call(self.library, self._function("leave"), (self.prefix,), (instance,))

    def seeded(self, instance: str, members_seen: int) -> Call:
        return Call(self.library, self._function("seeded"), (self.prefix,), (instance, members_seen))


WIRE_FIELD = "wire"  # in a member's description: the newest wire version it speaks


def marked(description: str) -> str:
    """A member's description with the newest wire version it speaks (unchanged if it is not a JSON object)."""
    try:
        data = json.loads(description)
    except ValueError:
        return description
    if not isinstance(data, dict):
        return description
    return json.dumps({**data, WIRE_FIELD: Wire.version}, separators=(",", ":"))


def speaks_current(description: str | None) -> bool:
    """Whether a member that described itself so knows the current wire (a newer member on the old one)."""
    try:
        data = json.loads(description or "")
    except ValueError:
        return False
    version = data.get(WIRE_FIELD) if isinstance(data, dict) else None
    return isinstance(version, int) and version >= Wire.version
