"""Roles on the fleet's store as Redis ACL users: what each kind of process may do, and nothing more.

- member: runs a core in the fleet. The quota's functions (FCALL) and its namespace's keys, except the
  command stream and the fleet-wide settings, which it may only read: a member cannot give the others orders.
- reader: `medops fleet`, `medops --attach --read-only`: read-only on the namespace.
- operator: a reader that may also add commands (pause, resume, set a limit) and keep or remove the
  fleet-wide settings (`medops fleet set --all`, `unset`), lift a model's blocks
  (`medops fleet clear`), forget members that left or died (`medops fleet forget`) and add or revoke the
  gateways' agent keys (`medops gateway key add/revoke`).
- oncall: a member that may also add commands and keep fleet-wide settings, for a console that runs its own
  core and acts on the fleet from its Fleet tab or limits form (one connection URL serves both, so one user
  must hold both rights).

Nobody but the store's admin may load the function library (FUNCTION LOAD would let one member replace the
code every other namespace runs), so `medops fleet acl --apply` loads it when it creates the users.
Key patterns need Redis 7.0 (`%R~` read-only selectors).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

from medops.core.errors import ConfigError
from medops.core.fleet.store import load_library
from medops.core.fleet.wire import LegacyWire, Wire, legacy_prefix, namespace_prefix
from medops.core.settings.config import STORE_USER_PATTERN
from medops.core.settings.redact import redact_url

ROLES: tuple[str, ...] = ("member", "reader", "operator", "oncall")

# What every role may run beside its own: the handshake, the store's clock and its own name.
_CONNECTION = "+ping +time +hello +client|setname +acl|whoami"
# Keys a member writes under its namespace; `commands` is not one.
MEMBER_WRITES: tuple[str, ...] = ("", "q:*", "snap:*", "ack:*", "requests", "alerts", "members", "alive", "beat",
                                  "share", "epoch", "epoch_at", "seeding_until", "seeded", "seed_expect",
                                  "gateway:key_used")  # a gateway's agent keys' last uses
# The old wire's keys (its functions take the prefix itself as KEYS[1]): a member speaks it during a rolling
# upgrade, while members of an older medops are alive.
LEGACY_WRITES: tuple[str, ...] = ("", "q:*", "members", "alive", "beat", "share", "epoch", "epoch_at",
                                  "seeding_until", "seeded", "seed_expect")
# The agent keys' hashes (core/gateway/key_redis.py): an operator adds and revokes keys.
KEY_BOOK: tuple[str, ...] = ("gateway:keys", "gateway:key_names", "gateway:key_used")
# A member's row (fleet/forget.py): an operator forgets members that left or died (`medops fleet forget`).
FORGET_WRITES: tuple[str, ...] = ("members", "snap:*")
# The fleet-wide settings (fleet/shared_settings.py): operators and oncall consoles set and unset them; members
# and readers only read them.
SETTINGS_WRITES: tuple[str, ...] = ("settings",)


@dataclass(frozen=True)
class StoreUser:
    """One ACL user: its name, role and password (shown once when generated, never logged)."""

    name: str
    role: str
    password: str

    def __repr__(self) -> str:  # a user printed by accident does not show its password
        return f"StoreUser(name={self.name!r}, role={self.role!r})"


def role_rules(role: str, namespace: str) -> str:
    """The ACL rules of `role` on `namespace` (after `reset`: nothing else is allowed)."""
    p = namespace_prefix(namespace)
    read = f"+@read -@dangerous %R~{p}*"
    if role in ("member", "oncall"):
        old = legacy_prefix(namespace)
        extra = ("commands", *SETTINGS_WRITES) if role == "oncall" else ()
        writes = " ".join([f"%RW~{p}{key}" for key in MEMBER_WRITES + extra]
                          + [f"%RW~{old}{key}" for key in LEGACY_WRITES])
        # @write brings FUNCTION LOAD and @scripting EVAL: both taken away again, FCALL given back.
        return f"{_CONNECTION} {read} +@write -@dangerous -@scripting +fcall +fcall_ro +function|list {writes}"
    if role == "reader":
        return f"{_CONNECTION} {read}"
    if role == "operator":
        # medops_clear names only the model's signal hash in KEYS; the other functions need the namespace.
        keys = " ".join(f"%RW~{p}{key}" for key in KEY_BOOK + FORGET_WRITES + SETTINGS_WRITES)
        return (f"{_CONNECTION} {read} +xadd %RW~{p}commands +fcall +del %RW~{p}q:*:sig "
                f"+hset +hsetnx +hdel +multi +exec {keys}")
    raise ConfigError(f"unknown store role {role!r}; use one of {', '.join(ROLES)}")


def check_user_name(name: str) -> str:
    """A user name as ACL SETUSER takes it on one line; ConfigError otherwise."""
    if not STORE_USER_PATTERN.fullmatch(name):
        raise ConfigError(f"store user name {name!r} is not allowed: use 1 to 64 of A-Z a-z 0-9 _ . -")
    return name


def new_users(names: Mapping[str, str], passwords: Mapping[str, str]) -> list[StoreUser]:
    """A user per role: the name given for it, and its password given or generated (32 bytes, URL-safe)."""
    return [StoreUser(check_user_name(names[role]), role, passwords.get(role) or secrets.token_urlsafe(32))
            for role in ROLES]


def setuser_args(user: StoreUser, namespace: str) -> list[str]:
    """ACL SETUSER's arguments for `user`; the password as its SHA-256 (`#...`), never in clear."""
    digest = hashlib.sha256(user.password.encode()).hexdigest()
    return ["ACL", "SETUSER", user.name, "reset", "on", f"#{digest}", "resetchannels",
            *role_rules(user.role, namespace).split()]


def setuser_line(user: StoreUser, namespace: str) -> str:
    """One line for redis-cli or an ACL file's `user` entry, without the password in clear."""
    return " ".join(setuser_args(user, namespace))


async def apply_users(url: str, password: str | None, namespace: str, users: list[StoreUser]) -> None:
    """Create (or reset) the users on the store and load the quota's library, as the store's admin.

    `ConfigError` if the store refuses (the connecting user is not its admin) or cannot be reached."""
    client = redis.Redis.from_url(url, password=password or None, socket_timeout=5, socket_connect_timeout=5,
                                  decode_responses=True)
    try:
        for user in users:
            await client.execute_command(*setuser_args(user, namespace))
        # Both wires: members of an older medops may still be running (a rolling upgrade). Neither replaces
        # a library already loaded.
        for wire in (Wire, LegacyWire):
            await load_library(client, wire.library)
    except (RedisError, OSError) as exc:
        raise ConfigError(f"quota store {redact_url(url)} refused the ACL users ({type(exc).__name__}): connect "
                          "as the store's admin (store_user and MEDOPS_STORE_PASSWORD)") from None
    finally:
        await client.aclose()
