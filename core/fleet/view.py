"""The fleet as a reader sees it from the store, without a core: members, their snapshots, the quota.

For `medops fleet` and for consoles watching members they do not run. Reads
only: the heartbeat set (alive or stale), each member's description and last
published snapshot, and the organisation's windows as the newest snapshot saw
them, with each member's part.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from medops.core.errors import ConfigError
from medops.core.fleet.store import MEMBER_TTL
from medops.core.settings.redact import redact_url

STALE_AFTER = 5.0  # seconds without a heartbeat before a member is marked stale (alive for MEMBER_TTL)


class FleetUnavailable(ConfigError):
    """No store is set, or it cannot be read."""


@dataclass(frozen=True)
class MemberRow:
    """One member as the fleet view lists it; figures from its last snapshot (absent: none published)."""

    instance: str
    host: str
    pid: int
    role: str
    version: str
    started: float  # wall time
    heartbeat_age: float  # seconds since its last heartbeat
    last_beat: float  # wall time of its last heartbeat, by this reader's clock
    state: str  # "alive", "stale" (beats late) or "gone" (none within MEMBER_TTL, or left)
    queued: Mapping[str, int]  # by priority
    in_flight: int
    done: int
    failed: int
    rate_limited: int
    own: Mapping[str, int]  # its part of each window of the default model
    loop_lag_p99_ms: float
    cpu_percent: float
    memory_percent: float
    open_alerts: int
    paused: bool
    gateway_clients: int | None = None  # a gateway member's connections open (None: it serves no gateway)
    gateway_in_flight: int = 0

    def uptime(self, now: float) -> float:
        """How long it has run by wall time `now`: while alive until now, once stale or gone until its last beat."""
        return max(0.0, (now if self.state == "alive" else self.last_beat) - self.started)


@dataclass(frozen=True)
class FleetWindow:
    model: str
    name: str
    used: int
    limit: int
    parts: Mapping[str, int]  # instance -> its part


@dataclass(frozen=True)
class FleetView:
    store: str  # redacted URL
    read_at: float  # wall time
    members: tuple[MemberRow, ...]
    windows: tuple[FleetWindow, ...]
    snapshots: Mapping[str, Mapping[str, Any]]  # instance -> its last published snapshot


async def read_fleet(url: str, namespace: str, password: str | None = None, budget: float = 2.0) -> FleetView:
    """Read every member and the organisation's quota from the store; `FleetUnavailable` if it cannot."""
    if not url:
        raise FleetUnavailable("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
    prefix = f"medops:{namespace}:"
    client = redis.Redis.from_url(url, password=password or None, socket_timeout=budget,
                                  socket_connect_timeout=budget, decode_responses=False)
    try:
        seconds, micros = await cast(Any, client.time())
        now = seconds + micros / 1e6
        described = await cast(Any, client.hgetall(f"{prefix}members"))
        beats = dict(await cast(Any, client.zrange(f"{prefix}alive", 0, -1, withscores=True)))
        names = sorted(k.decode() for k in described)
        raw = await client.mget([f"{prefix}snap:{name}" for name in names]) if names else []
    except (RedisError, OSError) as exc:
        raise FleetUnavailable(f"quota store {redact_url(url)} cannot be read ({type(exc).__name__}); "
                               "check store_url, MEDOPS_STORE_PASSWORD and that the store runs") from None
    finally:
        await client.aclose()
    snapshots = {name: orjson.loads(blob) for name, blob in zip(names, raw, strict=True) if blob}
    members = tuple(_row(name, orjson.loads(described[name.encode()]), beats.get(name.encode(), 0.0) / 1000, now,
                         snapshots.get(name)) for name in names)
    return FleetView(redact_url(url), time.time(), members, _windows(snapshots), snapshots)


def _row(name: str, info: Mapping[str, Any], expires: float, now: float, snap: Mapping[str, Any] | None) -> MemberRow:
    age = max(0.0, now - (expires - MEMBER_TTL))
    state = "gone" if expires <= now else "stale" if age > STALE_AFTER else "alive"
    snap = snap or {}
    scheduler = snap.get("scheduler", {})
    quota = snap.get("quota", {})
    models = quota.get("models", [])
    default = next((m for m in models if m.get("model") == quota.get("default_model")), None)
    system = snap.get("system", {})
    gateway = snap.get("gateway") if isinstance(snap.get("gateway"), Mapping) else None
    return MemberRow(
        instance=name, host=str(info.get("host", "?")), pid=int(info.get("pid", 0)), role=str(info.get("role", "?")),
        version=str(info.get("version", "?")), started=float(info.get("started", 0.0)), heartbeat_age=age,
        last_beat=time.time() - age,
        state=state, queued={q["priority"]: int(q["depth"]) for q in scheduler.get("queues", [])},
        in_flight=int(scheduler.get("in_flight", 0)), done=int(scheduler.get("completed", 0)),
        failed=int(scheduler.get("failed", 0)), rate_limited=sum(int(m.get("rate_limited", 0)) for m in models),
        own={w["name"]: int(w.get("own") or 0) for w in (default or {}).get("windows", [])},
        loop_lag_p99_ms=float(system.get("loop_lag_ms", 0.0)), cpu_percent=float(system.get("cpu_percent", 0.0)),
        memory_percent=float(system.get("memory_percent", 0.0)),
        open_alerts=sum(1 for a in snap.get("alerts", []) if a.get("cleared_at") is None),
        paused=bool(snap.get("paused", False)),
        gateway_clients=int(gateway.get("clients", 0)) if gateway is not None else None,
        gateway_in_flight=int(gateway.get("in_flight", 0)) if gateway is not None else 0)


def _windows(snapshots: Mapping[str, Mapping[str, Any]]) -> tuple[FleetWindow, ...]:
    """The organisation's windows as the newest snapshot saw them, with every member's part."""
    if not snapshots:
        return ()
    newest = max(snapshots.values(), key=lambda s: float(s.get("taken_at", 0.0)))
    rows = []
    for model in newest.get("quota", {}).get("models", []):
        for window in model.get("windows", []):
            parts = {}
            for name, snap in snapshots.items():
                for other in snap.get("quota", {}).get("models", []):
                    if other.get("model") == model.get("model"):
                        own = next((w.get("own") for w in other.get("windows", []) if w["name"] == window["name"]), 0)
                        parts[name] = int(own or 0)
            if window["used"] or any(parts.values()) or model.get("model") == newest["quota"].get("default_model"):
                rows.append(FleetWindow(model["model"], window["name"], int(window["used"]), int(window["limit"]),
                                        parts))
    return tuple(rows)
