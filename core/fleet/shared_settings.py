"""Fleet-wide settings: kept in the store, so a member that joins later runs with them too.

`medops fleet set KEY VALUE --all` (and the console's "whole fleet" limit) writes the value into one hash,
`medops:{ns}:settings` (KEY -> JSON: the value, who set it, when), before the live command goes to the
members alive. A member reads the hash once it has joined (`Fleet.on_join`) and applies what it finds through
the same `set_limit` the command uses. `medops fleet unset KEY` removes a value: members running keep theirs
until they restart; members that join later run with their own.

Who wins over a member's own value (its TOML, environment or command line):
- SHARED keys bound the organisation's use of Groq (its quota and how hard the fleet presses on it): the
  fleet-wide value wins, and the member says it replaced its own.
- every other live key is per member by nature (its machine's threads, its alerts): the fleet-wide value is
  a default; a member whose own value differs from medops's default keeps it, listed as an override.

Like every store value, what is read here is untrusted: only the live keys' fields are read, each size-checked
first; a value that is not one short word the config's rules accept is refused and said so, never applied.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.client import NEVER_DECODE
from redis.exceptions import RedisError

from medops.core.errors import ConfigError
from medops.core.fleet.entries import Malformed, text
from medops.core.fleet.store_writes import writing
from medops.core.fleet.view import FleetUnavailable
from medops.core.fleet.wire import namespace_prefix
from medops.core.inert_text import NAME, name
from medops.core.settings.config import Settings, show_value, validate_setting
from medops.core.settings.live_changes import LIVE, RESTART_ONLY
from medops.core.settings.redact import redact_url
from medops.core.snapshot import CoreSnapshot

SETTINGS_KEY = "settings"  # under the namespace's prefix
SETTING_BYTES = 1_024  # one entry's JSON is ~150 bytes; a larger one is not fetched
SECONDS_BOUND = 10**10
# They bound the organisation: concurrency and retries spend its quota, the request timeout and starvation
# bound shape every member's reservations in the store, and the quota alert judges the shared windows.
SHARED: frozenset[str] = frozenset({"groq_concurrent", "max_retries", "request_timeout", "starvation_bound",
                                    "alert_quota_remaining_percent"})
_DEFAULTS = {f.name: f.default for f in fields(Settings)}


@dataclass(frozen=True)
class StoredSetting:
    """One fleet-wide value and who set it when (as the store's entry says: the ACL user is the store's word)."""

    key: str
    value: str
    operator: str  # user@host
    store_user: str
    at: float  # wall time

    @property
    def shared(self) -> bool:
        return self.key in SHARED

    def set_by(self) -> str:
        return f"store user {self.store_user or '(unknown)'}, {self.operator}"

    def origin(self) -> str:
        """What a member's limit history records as who changed it."""
        return f"fleet settings in the store (set by {self.set_by()} at {when(self.at)})"


@dataclass(frozen=True)
class StoredSettings:
    """The fleet-wide settings as read, and the entries refused, each a line safe to show."""

    settings: tuple[StoredSetting, ...] = ()
    refused: tuple[str, ...] = ()

    def get(self, key: str) -> StoredSetting | None:
        return next((s for s in self.settings if s.key == key), None)


@dataclass(frozen=True)
class JoinPlan:
    """What a joining member does with the fleet-wide settings."""

    apply: tuple[StoredSetting, ...]  # differ from its value: applied through set_limit
    kept: tuple[tuple[StoredSetting, str], ...]  # per-member keys it sets itself: its own value kept
    same: tuple[StoredSetting, ...]  # already in force


@dataclass(frozen=True)
class Override:
    """A live member running a value other than the fleet-wide one."""

    instance: str
    key: str
    value: str
    fleet_value: str


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def storable(key: str, value: str) -> str:
    """'' if `key` = `value` may be kept fleet-wide, else why not (in words safe to show)."""
    if key in RESTART_ONLY:
        return f"{key} is sized at start (restart-only), so it is not kept fleet-wide: set it in each member's config"
    if key not in LIVE:
        return f"unknown setting {name(key)}; `medops config show` lists the known keys"
    if not NAME.fullmatch(value):
        return f"{key}: the value {name(value)} is not one short word of letters, digits and ._:@/+-"
    try:
        validate_setting(key, value, "the fleet-wide settings")
    except ConfigError as exc:
        return text(str(exc), "reason")
    return ""


def entry(value: str, operator: str, store_user: str, at: float) -> str:
    """The hash's value for one setting."""
    return json.dumps({"value": value, "operator": operator, "store_user": store_user, "at": at},
                      separators=(",", ":"))


def parsed(key: str, raw: bytes | str) -> StoredSetting:
    """One entry of the hash; `Malformed` saying what is wrong if it is not JSON of the right shape, or its value
    is not one the config's rules accept for `key`."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Malformed(f"{key}: not JSON") from None
    if not isinstance(data, dict):
        raise Malformed(f"{key}: expected an object")
    value, at = data.get("value"), data.get("at", 0.0)
    if not isinstance(value, str):
        raise Malformed(f"{key}: the value is not text")
    why = storable(key, value)
    if why:
        raise Malformed(why)
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) \
            or not 0 <= at <= SECONDS_BOUND:
        raise Malformed(f"{key}: its time is not a number from 0 to {SECONDS_BOUND}")
    operator, store_user = data.get("operator", ""), data.get("store_user", "")
    return StoredSetting(key, value, text(operator, "operator") if operator else "?",
                         name(store_user) if isinstance(store_user, str) and store_user else "", float(at))


async def read_settings(client: redis.Redis, prefix: str) -> StoredSettings:
    """The fleet-wide settings: only the live keys' fields, each measured before it is fetched, fetched as bytes
    (a member's client decodes: one value that is not UTF-8 must not fail the whole read). Raises the client's
    errors (the caller says what failed)."""
    key = f"{prefix}{SETTINGS_KEY}"
    names = sorted(LIVE)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hlen(key)
        for one in names:
            pipe.hstrlen(key, one)
        total, *sizes = await pipe.execute()
    present = [one for one, size in zip(names, sizes, strict=True) if int(size) > 0]
    wanted = [one for one, size in zip(names, sizes, strict=True) if 0 < int(size) <= SETTING_BYTES]
    raws = await cast(Any, client.execute_command("HMGET", key, *wanted, **{NEVER_DECODE: True})) if wanted else []
    settings: list[StoredSetting] = []
    refused: list[str] = [f"{one}: its entry is over {SETTING_BYTES} bytes (not read)"
                          for one in present if one not in wanted]
    for one, raw in zip(wanted, raws, strict=True):
        if raw is None:  # removed between the two reads
            continue
        try:
            settings.append(parsed(one, raw))
        except Malformed as exc:
            refused.append(str(exc))
    unknown = int(total) - len(present)
    if unknown > 0:
        refused.append(f"{unknown} entr{'y' if unknown == 1 else 'ies'} under names that are no live setting "
                       "ignored")
    return StoredSettings(tuple(settings), tuple(refused))


def join_plan(own: Settings, stored: StoredSettings) -> JoinPlan:
    """Which fleet-wide values a joining member applies (SHARED: always; others: where its own value is medops's
    default), which of its own it keeps, which are in force already."""
    apply, kept, same = [], [], []
    for setting in stored.settings:
        current = getattr(own, setting.key)
        if shown(setting.key, setting.value) == show_value(current):
            same.append(setting)
        elif setting.shared or current == _DEFAULTS.get(setting.key):
            apply.append(setting)
        else:
            kept.append((setting, show_value(current)))
    return JoinPlan(tuple(apply), tuple(kept), tuple(same))


def shown(key: str, value: str) -> str:
    """A stored value as `medops config show` prints it (so "5" and "5.0" of a float compare equal)."""
    return show_value(validate_setting(key, value, "the fleet-wide settings"))


def overrides(stored: StoredSettings, snapshots: Mapping[str, CoreSnapshot]) -> tuple[list[Override], list[str]]:
    """Each live member's values that differ from the fleet-wide ones, and the members that publish none."""
    found: list[Override] = []
    silent: list[str] = []
    for instance, snap in sorted(snapshots.items()):
        running = {s.key: s.value for s in snap.live_settings}
        if not running:
            silent.append(instance)
            continue
        for setting in stored.settings:
            value = running.get(setting.key)
            if value is not None and value != shown(setting.key, setting.value):
                # A member's published text: a short name as it is, anything else quoted, escaped and cut.
                found.append(Override(instance, setting.key, name(value), setting.value))
    return found, silent


# ---- without a core: `medops fleet settings` and `unset` ---------------------------------------------


def _client(url: str, password: str | None) -> redis.Redis:
    if not url:
        raise FleetUnavailable("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
    return redis.Redis.from_url(url, password=password or None, socket_timeout=2, socket_connect_timeout=2,
                                decode_responses=False)


async def read_fleet_settings(url: str, namespace: str, password: str | None = None) -> StoredSettings:
    """The fleet-wide settings of `namespace`; `FleetUnavailable` if the store cannot be read."""
    client = _client(url, password)
    try:
        return await read_settings(client, namespace_prefix(namespace))
    except (RedisError, OSError) as exc:
        raise FleetUnavailable(f"quota store {redact_url(url)} cannot be read ({type(exc).__name__}); "
                               "check store_url, MEDOPS_STORE_PASSWORD and that the store runs") from None
    finally:
        await client.aclose()


async def unset(url: str, namespace: str, key: str, password: str | None = None) -> bool:
    """Remove `key`'s fleet-wide value; True if there was one. Members running keep what they run."""
    async with writing(url, password, "change the fleet-wide settings", "an operator user") as client:
        return bool(await cast(Any, client.hdel(f"{namespace_prefix(namespace)}{SETTINGS_KEY}", key)))
